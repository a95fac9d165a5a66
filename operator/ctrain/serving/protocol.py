"""uvicorn's httptools protocol with what it lacks against slow and oversized clients.

uvicorn (0.54) closes idle keep-alive connections, but it has no timeout while a request
is arriving and keeps every header line it is sent: a client sending one byte a second,
or headers without end, holds a connection and memory for as long as it likes. This
subclass adds, per connection:

- a header timeout: from the connection's start (or the first byte of a later request)
  to the end of the request's headers; a connection that sent nothing is closed
  silently, one in the middle of its headers gets 408;
- a body timeout: from the end of the headers to the end of the body; 408;
- a bound on the request line and headers together; 431.

Each refusal is a JSON error like the app's, with `connection: close`. The timers are
armed only when a request is left incomplete by the bytes received so far, so a request
that arrives whole (the usual case) costs no timer at all. A connection left idle with
no timer at all (after an early answer to a request whose body kept coming) gets the
header timer too.

It also routes `POST .../infer` requests of a `ServingApp` to `ctrain.serving.direct`,
which answers them without an ASGI cycle.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

import httptools
import orjson
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from ctrain.serving.app import ServingApp
from ctrain.serving.direct import DirectRequest
from ctrain.serving.limits import Limits

__all__ = ["GuardedHttpToolsProtocol", "protocol_factory"]

log = logging.getLogger(__name__)


class _HeadersTooLarge(Exception):
    pass


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header/body timeouts and a header size bound."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: Limits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = False  # a request has begun and its headers are not complete
        self._in_body = False  # its headers are complete and its body is not
        app = self.app
        # Direct /infer answers when set; an access log (uvicorn writes it in its ASGI
        # cycle) keeps every request on the ASGI path.
        self._app = app if isinstance(app, ServingApp) and not self.access_log else None
        self._direct: DirectRequest | None = None
        self._idle_since: float | None = None  # loop time the connection became idle
        self._idle_timer: asyncio.TimerHandle | None = None

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        if self._direct is not None:
            self._direct.lost()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, with 431 for oversized headers and quieter logging:
        # a malformed request is the client's problem, not an event worth a warning.
        self._idle_since = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge) and (
                self.cycle is None or self.cycle.response_complete
            ):
                limit = self.limits.max_header_bytes
                self._refuse(431, f"the request headers are larger than {limit} bytes")
            else:
                log.debug("invalid HTTP request from %s", self.client, exc_info=exc)
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            log.debug("invalid HTTP request from %s", self.client)
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            pass  # no WebSocket here: the request is answered as a plain one
        if self.transport.is_closing():
            return
        if self._in_headers and self._header_timer is None:
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout, self._headers_late
            )
        elif self._in_body:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)
        elif self.cycle is None or self.cycle.response_complete:
            self._idle()  # e.g. the rest of a body answered early: idle from now

    def on_response_complete(self) -> None:
        # uvicorn's, with one idle timer per connection (`_idle`) instead of a timer
        # armed and cancelled for every response.
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle()

    def _idle(self) -> None:
        """No request in progress: close the connection if none starts within keep-alive."""
        self._idle_since = self.loop.time()
        if self._idle_timer is None:
            self._idle_timer = self.loop.call_at(
                self._idle_since + self.timeout_keep_alive, self._idle_check
            )

    def _idle_check(self) -> None:
        self._idle_timer = None
        since = self._idle_since
        if since is None or self.transport.is_closing():
            return  # busy: the request's own timers apply, its answer calls _idle again
        deadline = since + self.timeout_keep_alive
        if self.loop.time() >= deadline:
            self.transport.close()
        else:
            self._idle_timer = self.loop.call_at(deadline, self._idle_check)

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        # uvicorn also builds the ASGI scope here; a direct request never uses it, so
        # `_asgi_scope` builds it only for the requests that take the ASGI path.
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self._header_bytes = 0
        self._in_headers = True

    def _asgi_scope(self) -> None:
        url, headers, expect = self.url, self.headers, self.expect_100_continue
        super().on_message_begin()  # uvicorn's scope, for this request's headers
        self.url, self.headers, self.expect_100_continue = url, headers, expect
        self.scope["headers"] = headers

    # on_url and on_header are uvicorn's, counting the bytes: one call per line, not two.
    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_headers, self._in_body = False, True
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        app, cycle = self._app, self.cycle
        if (
            app is not None
            and (cycle is None or cycle.response_complete)  # not behind a pipelined request
            and not self.flow.write_paused  # the ASGI path waits for the client to read
            and not self.parser.should_upgrade()
        ):
            model = app.direct_model(self.parser.get_method(), self.url)
            if model is not None:
                keep_alive = (
                    self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
                )
                request = DirectRequest(self, app, model, keep_alive)
                self.cycle = self._direct = request  # type: ignore[assignment]
                if request.begin(self.headers, self.expect_100_continue):
                    return
                self.cycle, self._direct = cycle, None  # chunked: the ASGI path
        self._asgi_scope()
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        direct = self._direct
        if direct is not None and self.cycle is direct:  # type: ignore[comparison-overlap]
            direct.feed(body)
            return
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        direct = self._direct
        if direct is not None and self.cycle is direct:  # type: ignore[comparison-overlap]
            direct.complete()
            return
        super().on_message_complete()

    def direct_answered(self, request: DirectRequest) -> None:
        """A direct request wrote its answer: on to the next request, as uvicorn does."""
        if self._direct is request:
            self._direct = None
        self.on_response_complete()

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            raise _HeadersTooLarge  # stops the parser; data_received answers 431

    # -- timeouts --------------------------------------------------------------------------

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._in_headers and (cycle is None or cycle.response_complete):
            timeout = self.limits.header_timeout
            self._refuse(408, f"the request headers did not arrive within {timeout:g} s")
        elif self._in_headers or cycle is None:
            # Never sent a byte, or late behind a pipelined request still being answered
            # (a 408 now would come before that answer): just close.
            self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or not self._in_body:
            return
        cycle = self.cycle
        timeout = self.limits.body_timeout
        if self._direct is not None and cycle is self._direct:  # type: ignore[comparison-overlap]
            self._direct.lost(408)
        if cycle is not None and not cycle.response_started:
            self._refuse(408, f"the request body did not arrive within {timeout:g} s")
        else:
            self.transport.close()
        if cycle is not None:
            # What connection_lost would do: the app's receive() returns a disconnect and
            # its response (if it still sends one) goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` with a JSON error, and close the connection."""
        body = orjson.dumps({"error": message})
        head = b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n"
        self.transport.write(STATUS_LINE[status] + head % len(body) + b"\r\n" + body)
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._header_timer, self._body_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = self._idle_timer = None


def protocol_factory(limits: Limits) -> Callable[..., GuardedHttpToolsProtocol]:
    """What uvicorn's `Config(http=...)` takes: a picklable protocol class with `limits`."""
    return functools.partial(GuardedHttpToolsProtocol, limits=limits)
