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
that arrives whole (the usual case) costs no timer at all.
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

    # -- connection ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, with 431 for oversized headers and quieter logging:
        # a malformed request is the client's problem, not an event worth a warning.
        self._unset_keepalive_if_required()
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
        elif self._in_body and self._body_timer is None:
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_late)

    # -- parser callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._in_headers = True

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers, self._in_body = False, True
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

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
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None


def protocol_factory(limits: Limits) -> Callable[..., GuardedHttpToolsProtocol]:
    """What uvicorn's `Config(http=...)` takes: a picklable protocol class with `limits`."""
    return functools.partial(GuardedHttpToolsProtocol, limits=limits)
