"""One inference request, from admission to response bytes, within the server's limits.

Two paths, chosen per request:

- small (the common case): the body is parsed on the event loop and its rows join the
  micro-batcher (`ctrain.serving.batching`);
- large (a body over `LARGE_BODY_BYTES`, or more rows than one micro-batch): parsing,
  prediction and encoding run in one worker thread, one large request after another,
  so a request of the largest allowed size never holds the event loop: health checks
  and small requests are answered meanwhile.

A sampled request is handed to the prediction log (`ctrain.serving.predlog`) with the
outputs the log needs; the log only appends it to a list.

Admission (`admit`) happens before the body is read: at most `max_concurrency` requests
in progress and `max_inflight_bytes` of request bodies held; past that the answer is 503
with `Retry-After`, which costs the server almost nothing.

The core (`start`) reports through a callback rather than a coroutine, so the direct
HTTP path (`ctrain.serving.direct`) answers from the batcher's loop without a task per
request; the ASGI path (`__call__`) awaits the same core through a future.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ctrain.serving.batching import MicroBatcher, classify
from ctrain.serving.codec import BINARY_HEADER, InferRequest
from ctrain.serving.errors import (
    InvalidRequest,
    ModelNotReady,
    Overloaded,
    PayloadTooLarge,
    PredictionFailed,
    ServingError,
)
from ctrain.serving.limits import LARGE_BODY_BYTES, RETRY_AFTER_SECONDS, Limits, Receive, read_body
from ctrain.serving.model import ServedModel
from ctrain.serving.predlog import PredictionLogger

__all__ = ["Admission", "Inference", "Predicted"]

log = logging.getLogger(__name__)

# Called after each prediction: (model, rows predicted, requests in that call).
BatchObserver = Callable[[ServedModel, np.ndarray, int], None]


@dataclass(slots=True)
class Predicted:
    """A request and its answer."""

    request: InferRequest
    values: dict[str, np.ndarray]  # output name -> this request's rows
    body: bytes  # the response


# Called exactly once per started request: (the answer, None) or (None, the error).
Done = Callable[[Predicted | None, ServingError | None], None]


class Admission:
    """One admitted request: its place and reserved bytes, given back once (`release`)."""

    __slots__ = ("_held", "_inference", "json_length", "length", "received")

    def __init__(self, inference: Inference, length: int | None, json_length: int | None) -> None:
        self._inference = inference
        self.length = length  # Content-Length, None when chunked
        self.json_length = json_length  # Triton's binary extension
        self.received = time.time()
        self._held = 0

    def reserve(self, size: int) -> None:
        """Hold `size` more bytes of body, or refuse (503) if the budget is spent."""
        inference = self._inference
        if inference.inflight_bytes + size > inference.limits.max_inflight_bytes:
            raise Overloaded(
                f"the server is busy: {inference.inflight_bytes} bytes of requests in "
                "progress, retry later",
                RETRY_AFTER_SECONDS,
            )
        inference.inflight_bytes += size
        self._held += size

    def release(self) -> None:
        inference = self._inference
        if self._held >= 0:
            inference.inflight -= 1
            inference.inflight_bytes -= self._held
            self._held = -1


class Inference:
    """Admits, decodes, predicts and encodes inference requests."""

    def __init__(
        self,
        limits: Limits,
        batcher: MicroBatcher,
        observer: BatchObserver,
        prediction_log: PredictionLogger | None = None,
    ) -> None:
        self.limits = limits
        self.batcher = batcher
        self._observer = observer
        self.prediction_log = prediction_log
        self.inflight = 0  # requests in progress
        self.inflight_bytes = 0  # bytes of their bodies, reserved before reading
        # One thread: large requests run one after another, each on one core, and the
        # event loop keeps the other (and the GIL between numpy/scikit-learn calls).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctrain-large")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def admit(self, headers: list[tuple[bytes, bytes]]) -> Admission:
        """Admit a request from its headers (413, 400 or 503 otherwise); then `release` it."""
        limits = self.limits
        length = json_length = None
        for name, value in headers:
            if name == b"content-length":
                if not value.isdigit():
                    raise InvalidRequest("invalid content-length header")
                length = int(value)
                if length > limits.max_body_bytes:
                    raise PayloadTooLarge(
                        f"the request body is larger than {limits.max_body_bytes} bytes"
                    )
            elif name == BINARY_HEADER:
                if not value.isdigit():
                    raise InvalidRequest(f"invalid {BINARY_HEADER.decode()} header")
                json_length = int(value)
        if self.inflight >= limits.max_concurrency:
            raise Overloaded(
                f"the server is busy: {self.inflight} requests in progress, retry later",
                RETRY_AFTER_SECONDS,
            )
        admission = Admission(self, length, json_length)
        if length is not None:
            admission.reserve(length)
        self.inflight += 1
        return admission

    async def __call__(
        self, model: ServedModel, headers: list[tuple[bytes, bytes]], receive: Receive
    ) -> Predicted:
        """The ASGI path: admit, read the body, predict; the admission is always released."""
        admission = self.admit(headers)
        try:
            chunked = admission.reserve if admission.length is None else None
            body = await read_body(receive, self.limits.max_body_bytes, chunked)
            future: asyncio.Future[Predicted] = asyncio.get_running_loop().create_future()

            def done(predicted: Predicted | None, error: ServingError | None) -> None:
                if not future.done():
                    if error is not None:
                        future.set_exception(error)
                    else:
                        future.set_result(predicted)  # type: ignore[arg-type]

            self.start(model, body, admission, done)
            return await future
        finally:
            admission.release()

    def start(self, model: ServedModel, body: bytes, admission: Admission, done: Done) -> None:
        """Decode and queue the request; `done` gets the answer later.

        A request refused at once (invalid, too many rows, queue full) raises its
        ServingError here, and `done` is never called.
        """
        if len(body) > LARGE_BODY_BYTES:
            self._off_loop(model, body, admission, done)
            return
        request = model.spec.decode(body, admission.json_length, self.limits)
        if len(request.rows) > self.batcher.max_rows:
            self._off_loop(model, request, admission, done)
            return
        outputs, sampled = self._outputs(model, request)

        def predicted(values: dict[str, np.ndarray] | None, error: ServingError | None) -> None:
            if error is not None:
                done(None, error)
                return
            assert values is not None
            try:
                answer = Predicted(request, values, _encode(model, request, values))
            except Exception as exc:  # a bug: 500, never an escaped exception
                log.exception("encoding a response failed")
                done(None, PredictionFailed(f"encoding the response failed: {exc}"))
                return
            if sampled and self.prediction_log is not None:
                self.prediction_log.record(model, request, values, admission.received)
            done(answer, None)

        self.batcher.submit(model, request.rows, outputs, predicted)

    def _outputs(self, model: ServedModel, request: InferRequest) -> tuple[tuple[str, ...], bool]:
        """(what to predict, sampled?): the request's outputs, or more for the log."""
        if self.prediction_log is not None:
            logged = self.prediction_log.prepare(model, request)
            if logged is not None:
                return logged, True
        return request.outputs, False

    def _off_loop(
        self, model: ServedModel, body: bytes | InferRequest, admission: Admission, done: Done
    ) -> None:
        def work() -> tuple[Predicted, bool]:
            if isinstance(body, InferRequest):
                request = body
            else:
                request = model.spec.decode(body, admission.json_length, self.limits)
            outputs, sampled = self._outputs(model, request)
            try:
                values = model.predict_batch(request.rows, outputs)
            except Exception as exc:  # classified for the client: 400 or 500
                raise classify(exc) from exc
            return Predicted(request, values, _encode(model, request, values)), sampled

        def finished(future: asyncio.Future[tuple[Predicted, bool]]) -> None:
            if future.cancelled():  # the executor was shut down with the server
                done(None, ModelNotReady("the server is shutting down"))
                return
            error = future.exception()
            if error is not None:
                if not isinstance(error, ServingError):
                    log.error("a large request failed", exc_info=error)
                    error = PredictionFailed(f"prediction failed: {type(error).__name__}")
                done(None, error)
                return
            answer, sampled = future.result()
            self._observer(model, answer.request.rows, 1)
            if sampled and self.prediction_log is not None:
                self.prediction_log.record(model, answer.request, answer.values, admission.received)
            done(answer, None)

        loop = asyncio.get_running_loop()
        loop.run_in_executor(self._executor, work).add_done_callback(finished)


def _encode(model: ServedModel, request: InferRequest, values: dict[str, np.ndarray]) -> bytes:
    return model.encoder.encode(request.id, request.outputs, values)
