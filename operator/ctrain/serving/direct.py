"""Inference requests answered straight from the HTTP protocol, without an ASGI cycle.

Profiles of `ctrain serve` at concurrency 32 showed uvicorn's per-request ASGI machinery
(scope, cycle, task, receive/send messages, header checks) costing about as much as
everything ctrain does for a one-row request. For the one route that matters for
throughput, `POST /v2/models/<name>[/versions/<v>]/infer` with a Content-Length, the
protocol (`ctrain.serving.protocol`) hands the request to a `DirectRequest` instead:
the body is collected from the parser, the request goes through the same admission
and inference core as the ASGI path (`ctrain.serving.inference`), and the response is
written from the micro-batcher's callback. Every other request, and this one when it
is chunked, pipelined behind another or arrives while writing is paused, takes the ASGI
path, which stays the reference (in-process tests use it).

`DirectRequest` stands in for uvicorn's `RequestResponseCycle` on the connection
(`protocol.cycle`), so uvicorn's own logic keeps working: pipelined requests queue
behind it, a disconnect marks it, a graceful shutdown closes the connection after it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Protocol

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE

from ctrain.serving.errors import ServingError
from ctrain.serving.inference import Admission, Predicted

if TYPE_CHECKING:
    from ctrain.serving.app import ServingApp
    from ctrain.serving.model import ServedModel

__all__ = ["DirectRequest"]

_HEAD = b"content-type: application/json\r\ncontent-length: "
_DISCONNECTED = 499  # nginx's code for "the client went away": metrics only


class Connection(Protocol):
    """What a DirectRequest needs from its protocol."""

    transport: Any

    def direct_answered(self, request: DirectRequest) -> None: ...


class DirectRequest:
    """One inference request on one connection, answered without ASGI."""

    __slots__ = (
        "_admission",
        "_app",
        "_chunks",
        "_connection",
        "_dispatched",
        "_finished",
        "_model",
        "_started",
        "disconnected",
        "keep_alive",
        "message_event",
        "response_complete",
        "response_started",
    )

    def __init__(
        self, connection: Connection, app: ServingApp, model: ServedModel, keep_alive: bool
    ) -> None:
        self._connection = connection
        self._app = app
        self._model = model
        self._started = time.perf_counter()
        self._chunks: list[bytes] = []
        self._admission: Admission | None = None
        self._dispatched = False
        self._finished = False
        # The attributes uvicorn's protocol reads or sets on its cycle:
        self.keep_alive = keep_alive
        self.disconnected = False
        self.response_started = self.response_complete = False
        self.message_event = self  # uvicorn calls cycle.message_event.set() on a disconnect

    def set(self) -> None:
        """message_event.set(): nothing waits on this request's messages."""

    def begin(self, headers: list[tuple[bytes, bytes]], expect_continue: bool) -> bool:
        """Admit the request; False if it must take the ASGI path (a chunked body)."""
        try:
            admission = self._app.inference.admit(headers)
        except ServingError as exc:
            self._dispatched = True  # answered: nothing to predict
            self._answer(exc.status, orjson.dumps({"error": str(exc)}), exc.headers, exc)
            return True
        if admission.length is None:
            admission.release()
            return False
        self._admission = admission
        if expect_continue:
            self._connection.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def feed(self, chunk: bytes) -> None:
        if not self._dispatched:
            self._chunks.append(chunk)

    def complete(self) -> None:
        """The body is in: start the inference (or answer its refusal)."""
        if self._dispatched:
            return
        self._dispatched = True
        chunks = self._chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._chunks = []
        assert self._admission is not None
        try:
            self._app.inference.start(self._model, body, self._admission, self._done)
        except ServingError as exc:
            self._done(None, exc)

    def lost(self, status: int = _DISCONNECTED) -> None:
        """The connection closed (or timed out, 408) before the answer was written."""
        self.disconnected = True
        if not self._dispatched:  # no prediction will call back: finish here
            self._dispatched = True
            self._finish(status, None)

    def _done(self, predicted: Predicted | None, error: ServingError | None) -> None:
        if predicted is not None:
            self._answer(200, predicted.body, (), None)
        else:
            assert error is not None
            self._answer(error.status, orjson.dumps({"error": str(error)}), error.headers, error)

    def _answer(
        self,
        status: int,
        body: bytes,
        headers: tuple[tuple[bytes, bytes], ...],
        error: ServingError | None,
    ) -> None:
        transport = self._connection.transport
        if self.disconnected or transport.is_closing():
            self._finish(_DISCONNECTED, None)
            return
        self._finish(status, error)
        parts = [STATUS_LINE[status], _HEAD, str(len(body)).encode(), b"\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
            if name == b"connection" and value == b"close":
                self.keep_alive = False
        if not self.keep_alive and not any(name == b"connection" for name, _ in headers):
            parts.append(b"connection: close\r\n")
        parts += (b"\r\n", body)
        self.response_started = self.response_complete = True
        transport.write(b"".join(parts))
        if not self.keep_alive:
            transport.close()
        self._connection.direct_answered(self)

    def _finish(self, status: int, error: ServingError | None) -> None:
        """Give back the admission and record the request, once."""
        if self._finished:
            return
        self._finished = True
        if self._admission is not None:
            self._admission.release()
        metrics = self._app.metrics
        if error is not None:
            metrics.observe_error("infer", type(error).__name__)
        metrics.observe_request("infer", status, time.perf_counter() - self._started)
