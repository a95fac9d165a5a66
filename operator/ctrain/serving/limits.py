"""What one client may cost the server, and reading a request body within it.

A serving pod is reachable by anyone who can reach its Service, so every resource a
request consumes has a bound, checked before the resource is spent. Each bound is a
`ctrain serve` option (docs/install.md lists them with these defaults):

    limit                default   when exceeded
    max_body_bytes       8 MiB     413, from Content-Length before reading, else while reading
    max_request_rows     10,000    413, from the tensor's shape before any array is built
    max_string_length    1,024     400, for a BYTES value or the request id
    max_concurrency      1,024     503 + Retry-After: inference requests in progress
    max_inflight_bytes   64 MiB    503 + Retry-After: request bodies held at once (memory)
    max_queue_rows       8,192     503 + Retry-After: rows waiting for the micro-batcher
    max_header_bytes     64 KiB    431, request line and headers (`ctrain.serving.protocol`)
    header_timeout       10 s      408 and close: from the first byte to the end of headers
    body_timeout         30 s      408 and close: from the end of headers to the end of body
    keep_alive_timeout   5 s       close: an idle connection between requests

Memory is bounded by bytes, not by a request count: a parsed JSON body takes a few
times its size, so `max_inflight_bytes` bounds what requests can hold at once whatever
their mix (each body is reserved from its Content-Length before it is read, or chunk by
chunk when it is sent chunked).

A "large" request has a body over `LARGE_BODY_BYTES` or more rows than one micro-batch:
it is decoded and predicted in a worker thread, one at a time, so the event loop keeps
answering health checks and small requests while it runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ctrain.serving.errors import ClientDisconnected, PayloadTooLarge

__all__ = [
    "DEFAULT_LIMITS",
    "LARGE_BODY_BYTES",
    "RETRY_AFTER_SECONDS",
    "Limits",
    "read_body",
]

# Bodies above this are parsed off the event loop (orjson needs about 5 ms per MiB).
LARGE_BODY_BYTES = 1024 * 1024
# What a 503 asks the client to wait: long enough for a batch or two to drain.
RETRY_AFTER_SECONDS = 1

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


@dataclass(frozen=True)
class Limits:
    """The bounds of one server; the defaults are documented in the module docstring."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_request_rows: int = 10_000
    max_string_length: int = 1024
    max_concurrency: int = 1024
    max_inflight_bytes: int = 64 * 1024 * 1024
    max_queue_rows: int = 8192
    max_header_bytes: int = 64 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError("max_inflight_bytes must be at least max_body_bytes")


DEFAULT_LIMITS = Limits()


async def read_body(
    receive: Receive, limit: int, reserve: Callable[[int], None] | None = None
) -> bytes:
    """The whole body, refused with 413 as soon as it grows past `limit` bytes.

    `reserve(n)` is called for every chunk when the size was not known in advance; it
    raises to refuse the request (the memory budget). The body timeout is enforced by
    the HTTP protocol (`ctrain.serving.protocol`), which answers 408 and closes the
    connection: this coroutine then sees a disconnect.
    """
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected("the client disconnected")
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
    if reserve is not None:
        reserve(len(body))
    if not message.get("more_body", False):
        return body
    chunks = [body]
    size = len(body)
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected("the client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body is larger than {limit} bytes")
        if reserve is not None:
            reserve(len(chunk))
        chunks.append(chunk)
    return b"".join(chunks)
