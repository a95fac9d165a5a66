"""The ceiling of the serving benchmark: an ASGI app that predicts nothing.

Same stack as `ctrain serve` (uvicorn, httptools, uvloop, no access log, no Server or
Date header): it reads the request body and answers a fixed response of the size
`ctrain serve` answers (the file given with `--response`). Whatever a server does on
top of this (parsing the tensor, predicting, encoding, metrics) is its own cost, so the
benchmark reports ctrain's throughput as a share of this one.

    python ceiling.py --port 8090 --response answer.json
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import uvicorn

Message = MutableMapping[str, Any]


def make_app(response: bytes) -> Callable[..., Awaitable[None]]:
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(response)).encode()),
        ],
    }
    body = {"type": "http.response.body", "body": response}

    async def app(
        scope: Message,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to start or stop
        message = await receive()  # the whole body, as a server that uses it must
        while message.get("more_body"):
            message = await receive()
        await send(start)
        await send(body)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response", type=Path, required=True, help="the body to answer")
    args = parser.parse_args()
    uvicorn.run(
        make_app(args.response.read_bytes()),
        host=args.host, port=args.port, loop="uvloop", http="httptools", lifespan="off",
        access_log=False, log_level="warning", server_header=False, date_header=False,
        proxy_headers=False,
    )  # fmt: skip


if __name__ == "__main__":
    main()
