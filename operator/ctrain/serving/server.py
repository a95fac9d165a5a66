"""The uvicorn settings `ctrain serve` runs with, in one place for the command and tests.

uvicorn with httptools and uvloop, our protocol subclass for the header/body timeouts
and header size (`ctrain.serving.protocol`), no WebSocket, no proxy headers (nothing in
the app uses client addresses), no Server or Date header (bytes on every response), and
our own logging configuration instead of uvicorn's.
"""

from __future__ import annotations

from typing import Any

import uvicorn

from ctrain.serving.limits import DEFAULT_LIMITS, Limits
from ctrain.serving.protocol import protocol_factory

__all__ = ["uvicorn_config"]


def uvicorn_config(
    app: Any,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    limits: Limits = DEFAULT_LIMITS,
    access_log: bool = False,
    **extra: Any,
) -> uvicorn.Config:
    """A uvicorn.Config for `app` (an ASGI app, or an import string with `factory=True`)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=protocol_factory(limits),  # type: ignore[arg-type]
        ws="none",
        lifespan="on",
        access_log=access_log,
        log_config=None,
        server_header=False,
        date_header=False,
        proxy_headers=False,
        timeout_keep_alive=limits.keep_alive_timeout,  # type: ignore[arg-type]
        **extra,
    )
