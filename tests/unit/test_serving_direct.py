"""The direct /infer path on a real socket: same answers as ASGI, HTTP semantics kept.

`POST /v2/models/<name>/infer` with a Content-Length is answered by the protocol
without an ASGI cycle (`ctrain.serving.direct`); everything else goes through ASGI.
These tests compare the two byte for byte and check the HTTP corners the direct path
handles itself: Expect: 100-continue, HTTP/1.0, errors with and without keep-alive,
chunked bodies, a client that leaves before its answer.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from serving_fixtures import iris_classifier, make_app, running_server, slow_classifier

from ctrain.serving import ServingApp

pytestmark = pytest.mark.unit

ROWS = [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]
BODY = orjson.dumps({"id": "d-1", "inputs": [{"name": "input-0", "datatype": "FP64",
                     "shape": [2, 4], "data": ROWS}]})  # fmt: skip
PATH = b"/v2/models/iris/infer"


@pytest.fixture(scope="module")
def app() -> ServingApp:
    model, metadata, reference, _ = iris_classifier()
    return make_app(model, metadata, reference)


@pytest.fixture(scope="module")
def address(app: ServingApp) -> Iterator[tuple[str, int]]:
    with running_server(app) as address:
        host, port = address.split(":")
        yield host, int(port)


def _exchange(address: tuple[str, int], request: bytes, *, wait: float = 0) -> bytes:
    """Send `request` (in two parts `wait` seconds apart if set); all bytes until close."""
    with socket.create_connection(address, timeout=10) as sock:
        if wait:
            head, _, body = request.partition(b"\r\n\r\n")
            sock.sendall(head + b"\r\n\r\n")
            interim = sock.recv(65536)
            sock.sendall(body)
        else:
            interim = b""
            sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return interim + data


def _request(body: bytes = BODY, path: bytes = PATH, *headers: bytes, version: bytes = b"1.1"
             ) -> bytes:  # fmt: skip
    lines = [b"POST " + path + b" HTTP/" + version, b"Host: t", *headers]
    if not any(h.lower().startswith(b"transfer-encoding") for h in headers):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join([*lines, b"Connection: close", b"", b""]) + body


def test_the_direct_answer_is_the_asgi_answer_byte_for_byte(
    app: ServingApp, address: tuple[str, int]
) -> None:
    direct = _exchange(address, _request())
    # The versioned route with a query string is not a direct route: it takes ASGI.
    asgi = _exchange(address, _request(BODY, b"/v2/models/iris/versions/3/infer?x=1"))
    head, _, body = direct.partition(b"\r\n\r\n")
    asgi_head, _, asgi_body = asgi.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert body == asgi_body
    assert sorted(head.lower().split(b"\r\n")[1:]) == sorted(asgi_head.lower().split(b"\r\n")[1:])
    assert orjson.loads(body)["outputs"][0]["data"] == ["setosa", "virginica"]


def test_expect_100_continue_gets_its_interim_answer(address: tuple[str, int]) -> None:
    data = _exchange(address, _request(BODY, PATH, b"Expect: 100-continue"), wait=0.1)
    assert data.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")


def test_http_1_0_gets_its_answer_and_the_connection_closes(address: tuple[str, int]) -> None:
    request = b"POST " + PATH + b" HTTP/1.0\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
    data = _exchange(address, request)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in data


def test_a_chunked_body_takes_the_asgi_path(address: tuple[str, int]) -> None:
    chunked = b"%x\r\n" % len(BODY) + BODY + b"\r\n0\r\n\r\n"
    data = _exchange(address, _request(chunked, PATH, b"Transfer-Encoding: chunked"))
    assert data.startswith(b"HTTP/1.1 200 OK\r\n"), data


def test_errors_keep_the_connection_unless_the_body_was_not_read(
    address: tuple[str, int],
) -> None:
    with httpx.Client(base_url=f"http://{address[0]}:{address[1]}") as client:
        bad = client.post(PATH.decode(), content=b"{not json")
        good = client.post(PATH.decode(), content=BODY)  # the same connection
    assert bad.status_code == 400 and bad.json()["error"].startswith("invalid JSON")
    assert "connection" not in bad.headers
    assert good.status_code == 200
    huge = b"POST " + PATH + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 999999999\r\n\r\n"
    data = _exchange(address, huge)
    assert data.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close\r\n" in data


def test_a_client_that_leaves_before_its_answer_frees_its_request() -> None:
    """600 rows: predicted in the worker thread, so the loop sees the client leave first."""
    model, metadata, x = slow_classifier()
    app = make_app(model, metadata)
    body = orjson.dumps({"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [600, 8],
                                     "data": x[:600].ravel().tolist()}]})  # fmt: skip
    with running_server(app) as where:
        host, port = where.split(":")
        address = (host, int(port))
        for _ in range(3):
            with socket.create_connection(address, timeout=10) as sock:
                sock.sendall(_request(body, b"/v2/models/slow/infer"))  # and leave at once
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and app.metrics.requests.value("infer", "499") < 3:
            time.sleep(0.05)
        assert app.metrics.requests.value("infer", "499") == 3  # recorded as gone
        assert app.inflight == 0
        assert app.inference.inflight_bytes == 0
        answered = _exchange(address, _request(body, b"/v2/models/slow/infer"))
    assert answered.startswith(b"HTTP/1.1 200 OK\r\n")


def test_direct_requests_are_counted_in_the_metrics(
    app: ServingApp, address: tuple[str, int]
) -> None:
    before = app.metrics.requests.value("infer", "200")
    for _ in range(3):
        assert _exchange(address, _request()).startswith(b"HTTP/1.1 200 OK")
    metrics = httpx.get(f"http://{address[0]}:{address[1]}/metrics").text
    assert app.metrics.requests.value("infer", "200") == before + 3
    assert 'ctrain_serving_request_duration_seconds_count{route="infer"}' in metrics


def test_with_an_access_log_every_request_takes_the_asgi_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn writes access lines in its ASGI cycle: no /infer may bypass it then."""
    model, metadata, reference, _ = iris_classifier()
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    with running_server(make_app(model, metadata, reference), access_log=True) as where:
        host, port = where.split(":")
        assert _exchange((host, int(port)), _request()).startswith(b"HTTP/1.1 200 OK")
    assert '"POST /v2/models/iris/infer HTTP/1.1" 200' in caplog.text
