"""Hostile requests in-process: bounded allocations, and every limit with its status code."""

from __future__ import annotations

import asyncio
import struct
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from serving_fixtures import iris_classifier, make_app, mixed_classifier

from ctrain.serving import MicroBatcher, ServingApp
from ctrain.serving.limits import Limits

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

ROW = [5.1, 3.5, 1.4, 0.2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(app: ServingApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def _iris(**limits: Any) -> ServingApp:
    model, metadata, reference, _ = iris_classifier()
    return make_app(model, metadata, reference, limits=Limits(**limits))


def _shapes(**limits: Any) -> ServingApp:
    model, metadata, reference = mixed_classifier()
    return make_app(model, metadata, reference, limits=Limits(**limits))


def _tensor(data: Any, shape: list[int], datatype: str, **extra: Any) -> bytes:
    tensor = {"name": "input-0", "datatype": datatype, "shape": shape, "data": data}
    return orjson.dumps({"inputs": [tensor], **extra})


async def _peak_bytes(app: ServingApp, path: str, body: bytes) -> tuple[httpx.Response, int]:
    """(response, peak bytes Python allocated while the app handled `body`)."""
    async with _client(app) as c:
        tracemalloc.start()
        try:
            response = await c.post(path, content=body)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return response, peak


# -- a small request never allocates much ----------------------------------------------


def _long_among_short(n: int, long: int) -> list[list[str]]:
    """n rows of a categorical model, one category `long` characters long."""
    rows = [["1.0", "red"]] * n
    rows[0] = ["1.0", "x" * long]
    return rows


@pytest.mark.parametrize(
    ("make", "path", "body", "status"),
    [
        # One long string widened every value of a fixed-width unicode array: a 40 KB body
        # allocated 366 MB.
        (_shapes, "/v2/models/shapes/infer",
         _tensor(_long_among_short(3000, 10_000), [3000, 2], "BYTES"), 400),
        # The same within the string limit: still one pointer per value, not 4 KB.
        (_shapes, "/v2/models/shapes/infer",
         _tensor(_long_among_short(3000, 1000), [3000, 2], "BYTES"), 200),
        # A string among the numbers of a numeric tensor.
        (_iris, "/v2/models/iris/infer",
         _tensor(["x" * 10_000] + [1.0] * 3999, [1000, 4], "FP64"), 400),
        # The shape's element count is checked against the data before anything is built.
        (_iris, "/v2/models/iris/infer", _tensor([1.0] * 4, [10**12, 4], "FP64"), 413),
    ],
    ids=["bytes-long-string", "bytes-within-limit", "fp64-with-a-string", "huge-shape"],
)  # fmt: skip
async def test_a_small_request_never_allocates_much(
    make: Any, path: str, body: bytes, status: int
) -> None:
    app = make()
    response, peak = await _peak_bytes(app, path, body)
    assert response.status_code == status, response.text
    assert len(body) < 100_000
    assert peak < 16 * 1024 * 1024, f"{peak / 2**20:.0f} MiB for a {len(body)} byte body"


def _binary_header(datatype: str, shape: list[int], size: int) -> bytes:
    tensor = {"name": "input-0", "datatype": datatype, "shape": shape,
              "parameters": {"binary_data_size": size}}  # fmt: skip
    return orjson.dumps({"inputs": [tensor]})


def _binary_bytes(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


async def test_binary_bytes_with_a_long_string_allocates_little() -> None:
    values = ["1.0", "x" * 10_000] + ["1.0", "red"] * 2999
    binary = _binary_bytes(values)
    header = _binary_header("BYTES", [3000, 2], len(binary))
    app = _shapes()
    async with _client(app) as c:
        tracemalloc.start()
        try:
            response = await c.post(
                "/v2/models/shapes/infer",
                content=header + binary,
                headers={"Inference-Header-Content-Length": str(len(header))},
            )
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert response.status_code == 400
    assert response.json() == {"error": "a BYTES value is longer than 1024 characters"}
    assert peak < 16 * 1024 * 1024


# -- limits and their codes ------------------------------------------------------------


async def test_a_body_over_the_limit_is_413_from_its_content_length() -> None:
    app = _iris(max_body_bytes=1000)
    body = _tensor([ROW] * 80, [80, 4], "FP64")
    assert len(body) > 1000
    async with _client(app) as c:
        response = await c.post("/v2/models/iris/infer", content=body)
        after = await c.post("/v2/models/iris/infer", content=_tensor([ROW], [1, 4], "FP64"))
    assert response.status_code == 413
    assert response.json() == {"error": "the request body is larger than 1000 bytes"}
    assert response.headers["connection"] == "close"  # the unread body is not drained
    assert after.status_code == 200


async def test_a_chunked_body_over_the_limit_is_413_while_reading() -> None:
    app = _iris(max_body_bytes=1000)
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b" " * 100

    async with _client(app) as c:
        response = await c.post("/v2/models/iris/infer", content=chunks())
    assert response.status_code == 413
    assert response.json() == {"error": "the request body is larger than 1000 bytes"}
    assert len(sent) < 100  # it stopped reading


async def test_an_invalid_content_length_is_400() -> None:
    app = _iris()
    async with _client(app) as c:
        response = await c.post(
            "/v2/models/iris/infer",
            content=_tensor([ROW], [1, 4], "FP64"),
            headers={"Content-Length": "-1"},
        )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid content-length header"}


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
async def test_more_rows_than_the_limit_is_413(binary: bool) -> None:
    app = _iris(max_request_rows=10)
    rows = np.tile(ROW, (11, 1))
    if binary:
        data = rows.astype("<f8").tobytes()
        header = _binary_header("FP64", [11, 4], len(data))
        content, headers = header + data, {"Inference-Header-Content-Length": str(len(header))}
    else:
        content, headers = _tensor(rows.tolist(), [11, 4], "FP64"), {}
    async with _client(app) as c:
        response = await c.post("/v2/models/iris/infer", content=content, headers=headers)
        ten = await c.post("/v2/models/iris/infer", content=_tensor([ROW] * 10, [10, 4], "FP64"))
    assert response.status_code == 413
    assert response.json() == {"error": "11 rows in one request: the limit is 10"}
    assert ten.status_code == 200


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (_tensor([["1.0", "r" * 65]], [1, 2], "BYTES"),
         "a BYTES value is longer than 64 characters"),
        (_tensor([["1.0", "red"]], [1, 2], "BYTES", id="i" * 65),
         "id is longer than 64 characters"),
    ],
    ids=["value", "id"],
)  # fmt: skip
async def test_strings_longer_than_the_limit_are_400(body: bytes, error: str) -> None:
    app = _shapes(max_string_length=64)
    async with _client(app) as c:
        response = await c.post("/v2/models/shapes/infer", content=body)
        longest = _tensor([["1.0", "r" * 64]], [1, 2], "BYTES", id="i" * 64)
        ok = await c.post("/v2/models/shapes/infer", content=longest)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert ok.status_code == 200


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ([[[*ROW]]], "data must be flat or nested by rows, got deeper lists"),
        ([1.0, [2.0, 3.0], 4.0, 5.0], "data must be flat or nested by rows, got deeper lists"),
        ([[*ROW], 1.0], "data is ragged: nested lists of different lengths"),
        (b"[18446744073709551616, 1, 2, 3]", "INT64 data must be numbers, got mixed values"),
    ],
    ids=["three-levels", "mixed-levels", "row-and-value", "int-beyond-64-bits"],
)
async def test_odd_data_layouts_are_400(data: Any, error: str) -> None:
    app = _iris()
    if isinstance(data, bytes):  # what orjson.dumps refuses to write
        body = _tensor("DATA", [1, 4], "INT64").replace(b'"DATA"', data)
    else:
        body = _tensor(data, [1, 4], "INT64")
    async with _client(app) as c:
        response = await c.post("/v2/models/iris/infer", content=body)
    assert (response.status_code, response.json()) == (400, {"error": error})


async def test_an_output_asked_twice_is_400() -> None:
    """Each listed output is answered: a list of a million would amplify the answer."""
    app = _iris()
    outputs = [{"name": "predict_proba"}] * 3
    async with _client(app) as c:
        response = await c.post(
            "/v2/models/iris/infer", content=_tensor([ROW], [1, 4], "FP64", outputs=outputs)
        )
    assert (response.status_code, response.json()) == (
        400,
        {"error": "output 'predict_proba' is asked for more than once"},
    )


async def test_a_saturated_server_answers_503_with_retry_after() -> None:
    app = _iris(max_concurrency=2)
    release = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], '
        await release.wait()
        yield b'"data": [5.1, 3.5, 1.4, 0.2]}]}'

    async with _client(app) as c:
        held = [asyncio.create_task(c.post("/v2/models/iris/infer", content=slow_body()))
                for _ in range(2)]  # fmt: skip
        for _ in range(100):
            if app.inflight == 2:
                break
            await asyncio.sleep(0.01)
        refused = await c.post("/v2/models/iris/infer", content=_tensor([ROW], [1, 4], "FP64"))
        live = await c.get("/v2/health/live")
        assert app.inference.inflight_bytes > 0  # the chunked bodies, reserved as they came
        release.set()
        answered = await asyncio.gather(*held)
        after = await c.post("/v2/models/iris/infer", content=_tensor([ROW], [1, 4], "FP64"))
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {"error": "the server is busy: 2 requests in progress, retry later"}
    assert live.status_code == 200
    assert [r.status_code for r in answered] == [200, 200]
    assert after.status_code == 200
    assert app.inflight == 0
    assert app.inference.inflight_bytes == 0


async def test_bodies_in_flight_are_bounded_in_bytes() -> None:
    """Memory is bounded whatever the mix: a body that does not fit waits outside."""
    app = _iris(max_body_bytes=1000, max_inflight_bytes=1500)
    release = asyncio.Event()
    head = b'{"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], '
    tail = b'"data": [5.1, 3.5, 1.4, 0.2]}]}'
    padded = head + b" " * (900 - len(head) - len(tail)) + tail

    async def slow_body() -> AsyncIterator[bytes]:
        yield padded[:100]
        await release.wait()
        yield padded[100:]

    async with _client(app) as c:
        held = asyncio.create_task(c.post(
            "/v2/models/iris/infer", content=slow_body(), headers={"Content-Length": "900"}
        ))  # fmt: skip
        for _ in range(100):
            if app.inflight == 1:
                break
            await asyncio.sleep(0.01)
        refused = await c.post("/v2/models/iris/infer", content=padded)
        small = await c.post("/v2/models/iris/infer", content=_tensor([ROW], [1, 4], "FP64"))
        release.set()
        answered = await held
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {
        "error": "the server is busy: 900 bytes of requests in progress, retry later"
    }
    assert small.status_code == 200  # 900 + 91 bytes fit
    assert answered.status_code == 200
    assert app.inference.inflight_bytes == 0


async def test_the_batcher_queue_is_bounded() -> None:
    batcher = MicroBatcher(max_rows=4, max_queue_rows=6)

    class Model:
        def predict_batch(self, rows: np.ndarray, outputs: Any) -> dict[str, np.ndarray]:
            return {"predict": rows.sum(axis=1)}

    model = Model()

    async def one(v: float) -> Any:
        try:
            return (await batcher.predict(model, np.array([[v]]), ("predict",)))["predict"][0]  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc

    results = await asyncio.gather(*(one(float(i)) for i in range(10)))
    await batcher.aclose()
    answered = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert answered == [float(i) for i in range(6)]
    assert len(refused) == 4
    assert {type(r).__name__ for r in refused} == {"Overloaded"}
    assert refused[0].headers == ((b"retry-after", b"1"),)  # type: ignore[attr-defined]
