"""Slow and oversized clients on a real socket: header and body timeouts, header size.

uvicorn has no header or body read timeout and keeps every header line it is sent, so a
client could hold a connection (and memory) forever by sending slowly or without end.
`ctrain.serving.protocol` bounds both; these tests speak raw HTTP/1.1 to a real server.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from typing import BinaryIO

import orjson
import pytest
from serving_fixtures import iris_classifier, make_app, running_server

from ctrain.serving import ServingApp
from ctrain.serving.limits import Limits

pytestmark = pytest.mark.unit

BODY = orjson.dumps({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
                                 "data": [5.1, 3.5, 1.4, 0.2]}]})  # fmt: skip
REQUEST = (
    b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
FAST = Limits(header_timeout=0.5, body_timeout=0.5, max_header_bytes=2048, keep_alive_timeout=1)


@pytest.fixture(scope="module")
def app() -> ServingApp:
    model, metadata, reference, _ = iris_classifier()
    return make_app(model, metadata, reference, limits=FAST)


@pytest.fixture(scope="module")
def address(app: ServingApp) -> Iterator[tuple[str, int]]:
    with running_server(app) as address:
        host, port = address.split(":")
        yield host, int(port)


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    sock.settimeout(10)
    return sock


def _read_all(sock: socket.socket) -> tuple[bytes, float]:
    """Everything until the server closes, and when it closed (monotonic)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data, time.monotonic()


def _response(reader: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One response read off a keep-alive connection (`sock.makefile("rb")`)."""
    status_line = reader.readline()
    assert status_line, "the server closed the connection"
    headers = {}
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().rstrip("\r\n").partition(": ")
        headers[name.lower()] = value
    return int(status_line.split()[1]), headers, reader.read(int(headers["content-length"]))


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(
    address: tuple[str, int],
) -> None:
    with _connect(address) as sock:
        opened = time.monotonic()
        data, closed = _read_all(sock)
    assert data == b""  # nothing was asked, nothing is answered
    assert closed - opened < 5


def test_headers_sent_too_slowly_get_408_and_the_connection_closes(
    address: tuple[str, int],
) -> None:
    with _connect(address) as sock:
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\n")
        started = time.monotonic()
        try:
            for i in range(40):  # a header every 0.1 s: never finished within 0.5 s
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
                time.sleep(0.1)
        except OSError:
            pass  # the server closed while we were still sending: what we want
        data, closed = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"connection: close" in data
    assert b'{"error":"the request headers did not arrive within 0.5 s"}' in data
    assert closed - started < 5


def test_a_body_sent_too_slowly_gets_408_and_frees_its_request(
    app: ServingApp, address: tuple[str, int]
) -> None:
    with _connect(address) as sock:
        sock.sendall(REQUEST[: -len(BODY) + 10])  # the headers and 10 bytes of the body
        started = time.monotonic()
        data, closed = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b'{"error":"the request body did not arrive within 0.5 s"}' in data
    assert closed - started < 5
    for _ in range(100):
        if app.inflight == 0:
            break
        time.sleep(0.02)
    assert app.inflight == 0
    assert app.inference.inflight_bytes == 0


@pytest.mark.parametrize(
    "head",
    [
        b"GET /v2/health/live HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 4096 + b"\r\n\r\n",
        b"GET /v2/health/live HTTP/1.1\r\n" + b"X-Many: a\r\n" * 400 + b"\r\n",
        b"GET /" + b"a" * 4096 + b" HTTP/1.1\r\nHost: test\r\n\r\n",
    ],
    ids=["one-big-header", "many-headers", "long-url"],
)
def test_headers_over_the_limit_get_431(address: tuple[str, int], head: bytes) -> None:
    with _connect(address) as sock:
        with contextlib.suppress(OSError):  # the server may close while we still send
            sock.sendall(head)
        data, _ = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 431 "), data
    assert b'{"error":"the request headers are larger than 2048 bytes"}' in data


def test_a_body_over_the_limit_is_refused_before_it_is_sent(address: tuple[str, int]) -> None:
    with _connect(address) as sock:
        sock.sendall(
            b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: test\r\n"
            b"Content-Length: 1000000000\r\n\r\n"
        )
        data, _ = _read_all(sock)
    assert data.startswith(b"HTTP/1.1 413 "), data
    assert b"connection: close" in data


def test_an_idle_keep_alive_connection_is_closed(address: tuple[str, int]) -> None:
    with _connect(address) as sock, sock.makefile("rb") as reader:
        sock.sendall(REQUEST)
        assert _response(reader)[0] == 200
        answered = time.monotonic()
        data, closed = _read_all(sock)
    assert data == b""
    assert 0.9 < closed - answered < 5


def test_keep_alive_and_pipelining_still_work(address: tuple[str, int]) -> None:
    with _connect(address) as sock, sock.makefile("rb") as reader:
        for _ in range(3):  # one after another on the same connection, slower than 0.5 s
            sock.sendall(REQUEST)
            status, _, body = _response(reader)
            assert status == 200, body
            time.sleep(0.3)
        sock.sendall(REQUEST * 3)  # pipelined
        for _ in range(3):
            status, _, body = _response(reader)
            assert status == 200, body
            assert orjson.loads(body)["outputs"][0]["data"] == ["setosa"]


def test_a_request_split_across_packets_within_the_timeouts_is_served(
    address: tuple[str, int],
) -> None:
    with _connect(address) as sock, sock.makefile("rb") as reader:
        for i in range(0, len(REQUEST), 40):
            sock.sendall(REQUEST[i : i + 40])
            time.sleep(0.01)
        status, _, body = _response(reader)
    assert status == 200, body
