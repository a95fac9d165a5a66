"""Adaptive micro-batching: concurrent requests share predict calls, answers never mix."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterable
from typing import Any

import httpx
import numpy as np
import pytest
from serving_fixtures import iris_classifier, make_app, regressor, running_server

from ctrain.serving import MicroBatcher, ServingApp

pytestmark = [pytest.mark.unit, pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _distinct_rows(n: int, seed: int = 0) -> np.ndarray:
    """n different regressor inputs: each request's answer identifies its input."""
    x = regressor()[2]
    rng = np.random.default_rng(seed)
    return x[rng.choice(len(x), n, replace=False)]


def _body(rows: np.ndarray, request_id: str) -> dict[str, Any]:
    return {"id": request_id, "inputs": [{"name": "input-0", "datatype": "FP64",
            "shape": list(rows.shape), "data": rows.ravel().tolist()}]}  # fmt: skip


def _batches(app: ServingApp) -> tuple[float, float]:
    """(predict calls, requests in them) from the batch-size histogram."""
    get = app.metrics.registry.get_sample_value
    return (
        get("ctrain_serving_batch_requests_count") or 0.0,
        get("ctrain_serving_batch_requests_sum") or 0.0,
    )


async def _concurrent(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> list[Any]:
    responses = await asyncio.gather(
        *(client.post("/v2/models/diabetes/infer", json=b) for b in bodies)
    )
    assert [r.status_code for r in responses] == [200] * len(bodies)
    return [r.json() for r in responses]


async def test_100_concurrent_requests_each_get_their_own_answer() -> None:
    model, metadata, _ = regressor()
    app = make_app(model, metadata)
    rows = _distinct_rows(100)
    bodies = [_body(rows[i : i + 1], f"r{i}") for i in range(100)]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        answers = await _concurrent(client, bodies)
    expected = model.predict(rows)
    for i, answer in enumerate(answers):
        assert answer["id"] == f"r{i}"
        assert answer["outputs"][0]["shape"] == [1]
        assert answer["outputs"][0]["data"] == pytest.approx([expected[i]], rel=1e-12)
    calls, requests = _batches(app)
    assert requests == 100
    assert calls < 100, "concurrent requests were not coalesced"
    singles = app.metrics.registry.get_sample_value(
        "ctrain_serving_batch_requests_bucket", {"le": "1.0"}
    )
    assert singles is not None and singles < calls


async def test_requests_of_different_sizes_get_their_own_slices() -> None:
    model, metadata, _ = regressor()
    app = make_app(model, metadata)
    rows = _distinct_rows(150, seed=1)
    sizes = [1, 3, 2, 5, 1, 4] * 5
    offsets = np.cumsum([0, *sizes])
    bodies = [_body(rows[a:b], f"r{i}") for i, (a, b) in enumerate(itertools.pairwise(offsets))]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        answers = await _concurrent(client, bodies)
    expected = model.predict(rows)
    for i, (answer, a, b) in enumerate(zip(answers, offsets, offsets[1:], strict=False)):
        assert answer["id"] == f"r{i}"
        assert answer["outputs"][0]["shape"] == [b - a]
        assert answer["outputs"][0]["data"] == pytest.approx(expected[a:b].tolist(), rel=1e-12)
    assert _batches(app)[0] < len(bodies)


async def test_classifier_outputs_stay_with_their_request() -> None:
    model, metadata, reference, x = iris_classifier()
    app = make_app(model, metadata, reference)
    order = np.random.default_rng(2).permutation(len(x))
    bodies = [
        {**_body(x[i : i + 1], f"r{i}"),
         "outputs": [{"name": "predict_proba"}] if i % 3 == 0 else [{"name": "predict"}]}
        for i in order
    ]  # fmt: skip
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        responses = await asyncio.gather(
            *(client.post("/v2/models/iris/infer", json=b) for b in bodies)
        )
    for i, response in zip(order, responses, strict=True):
        answer = response.json()
        assert answer["id"] == f"r{i}"
        (output,) = answer["outputs"]
        if i % 3 == 0:
            assert output["name"] == "predict_proba"
            assert output["data"] == pytest.approx(model.predict_proba(x[i : i + 1])[0].tolist())
        else:
            assert output == {"name": "predict", "datatype": "BYTES", "shape": [1],
                              "data": model.predict(x[i : i + 1]).tolist()}  # fmt: skip


def test_batches_form_over_real_http_connections() -> None:
    """uvicorn + httptools + uvloop on a real port, 64 concurrent connections."""
    model, metadata, _ = regressor()
    app = make_app(model, metadata)
    rows = _distinct_rows(200, seed=3)

    async def scenario(address: str) -> list[Any]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(base_url=f"http://{address}", limits=limits) as client:
            return await _concurrent(client, [_body(rows[i : i + 1], f"r{i}") for i in range(200)])

    with running_server(app) as address:
        answers = asyncio.run(scenario(address))
    expected = model.predict(rows)
    assert [a["id"] for a in answers] == [f"r{i}" for i in range(200)]
    got = [a["outputs"][0]["data"][0] for a in answers]
    assert got == pytest.approx(expected.tolist(), rel=1e-12)
    calls, requests = _batches(app)
    assert requests == 200
    assert calls < 200, "no batch of more than one request formed over HTTP"


# -- the batcher alone ---------------------------------------------------------------


class _Recorder:
    """Stands in for ServedModel: records each predict call, answers row sums."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on

    def predict_batch(self, rows: np.ndarray, outputs: Iterable[str]) -> dict[str, np.ndarray]:
        self.calls.append(len(rows))
        if self.fail_on is not None and (rows == self.fail_on).any():
            raise ValueError(f"{self.fail_on} is not allowed")
        return {"predict": rows.sum(axis=1)}


async def _submit(batcher: MicroBatcher, model: Any, values: list[float]) -> list[Any]:
    async def one(v: float) -> Any:
        try:
            return (await batcher.predict(model, np.array([[v, v]]), ("predict",)))["predict"][0]
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            return exc

    return list(await asyncio.gather(*(one(v) for v in values)))


async def test_max_rows_bounds_every_batch() -> None:
    recorder = _Recorder()
    batcher = MicroBatcher(max_rows=4)
    results = await _submit(batcher, recorder, [float(i) for i in range(10)])
    await batcher.aclose()
    assert results == [2.0 * i for i in range(10)]
    assert max(recorder.calls) == 4
    assert sum(recorder.calls) == 10


async def test_an_idle_request_is_answered_alone_and_at_once() -> None:
    recorder = _Recorder()
    batcher = MicroBatcher(max_rows=512)
    started = time.perf_counter()
    assert await _submit(batcher, recorder, [1.0]) == [2.0]
    elapsed = time.perf_counter() - started
    await batcher.aclose()
    assert recorder.calls == [1]
    assert elapsed < 0.5  # no fixed batching delay (generous bound for a loaded machine)


async def test_a_failing_row_only_fails_its_request() -> None:
    recorder = _Recorder(fail_on=3.0)
    batcher = MicroBatcher()
    results = await _submit(batcher, recorder, [1.0, 2.0, 3.0, 4.0])
    await batcher.aclose()
    assert results[:2] == [2.0, 4.0]
    assert results[3] == 8.0
    assert type(results[2]).__name__ == "InvalidRequest"
    assert str(results[2]) == "the model rejected the input: 3.0 is not allowed"
    assert recorder.calls[0] == 4  # one batch first, then each request alone


async def test_load_grows_batches_idle_keeps_them_single() -> None:
    recorder = _Recorder()
    batcher = MicroBatcher()
    assert await _submit(batcher, recorder, [1.0]) == [2.0]
    burst = await _submit(batcher, recorder, [float(i) for i in range(2, 12)])
    assert await _submit(batcher, recorder, [5.0]) == [10.0]
    await batcher.aclose()
    assert burst == [2.0 * i for i in range(2, 12)]
    assert recorder.calls == [1, 10, 1]


def test_public_names() -> None:
    import ctrain.serving

    assert sorted(ctrain.serving.__all__) == [
        "DirectorySource", "DriftMonitor", "DriftSnapshot", "LoadedModel", "MicroBatcher",
        "ModelHolder", "ModelLoadError", "ModelSource", "ModelState", "RegistrySource",
        "ServedModel", "ServingApp", "ServingError", "ServingMetrics", "StaticSource",
    ]  # fmt: skip
    for name in ctrain.serving.__all__:
        assert getattr(ctrain.serving, name) is not None
