"""Model lifecycle: not ready until loaded, refused models keep the server up, retries."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import numpy as np
import pytest
from serving_fixtures import iris_classifier, write_model_dir
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from ctrain.serving import (
    DirectorySource,
    ModelHolder,
    ModelLoadError,
    ServingApp,
    StaticSource,
)

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

BODY = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
                    "data": [5.1, 3.5, 1.4, 0.2]}]}  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Doubler(TransformerMixin, BaseEstimator):
    """A custom class: skops must refuse to build it from a file."""

    def fit(self, x: np.ndarray, y: object = None) -> Doubler:
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x) * 2


def _client(app: ServingApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    model, metadata, reference, _ = iris_classifier()
    return write_model_dir(tmp_path / "iris", model, metadata, reference)


def _app(source: DirectorySource | StaticSource) -> ServingApp:
    return ServingApp(ModelHolder("iris", source, retry_initial=0.05, retry_max=0.1))


async def test_not_ready_before_load_but_live() -> None:
    model, metadata, reference, _ = iris_classifier()
    app = _app(StaticSource(model, metadata, reference))
    not_ready = {"name": "iris", "ready": False, "state": "Loading", "reason": "Loading",
                 "message": "model iris is loading"}  # fmt: skip
    async with _client(app) as c:
        assert (await c.get("/v2/health/live")).status_code == 200
        for path in ("/v2/health/ready", "/v2/models/iris/ready"):
            response = await c.get(path)
            assert (response.status_code, response.json()) == (503, not_ready), path
        unavailable = {"error": "model iris is not ready: model iris is loading"}
        for method, path in [("POST", "/v2/models/iris/infer"), ("GET", "/v2/models/iris"),
                             ("GET", "/drift")]:  # fmt: skip
            response = await c.request(method, path, json=BODY if method == "POST" else None)
            assert (response.status_code, response.json()) == (503, unavailable), path
        assert (await c.get("/v2/models/other/ready")).status_code == 404
        metrics = (await c.get("/metrics")).text
    assert 'ctrain_serving_model_loaded{model="iris"} 0.0' in metrics


async def test_directory_model_loads_and_serves(model_dir: Path) -> None:
    app = _app(DirectorySource(model_dir))
    app.holder.load()
    async with _client(app) as c:
        ready = await c.get("/v2/health/ready")
        response = await c.post("/v2/models/iris/infer", json=BODY)
        drift = (await c.get("/drift")).json()
    assert (ready.status_code, ready.json()["state"]) == (200, "Ready")
    assert response.json()["outputs"][0]["data"] == ["setosa"]
    assert drift["reference"] == (model_dir / "reference.json").resolve().as_uri()


def _tamper(model_dir: Path) -> None:
    data = bytearray((model_dir / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (model_dir / "model.skops").write_bytes(bytes(data))


def _untrusted(model_dir: Path) -> None:
    model, metadata, reference, x = iris_classifier()
    y = model.predict(x)
    custom = make_pipeline(Doubler(), LogisticRegression(max_iter=500)).fit(x, y)
    write_model_dir(model_dir, custom, metadata, reference)


def _missing(model_dir: Path) -> None:
    (model_dir / "model.skops").unlink()


@pytest.mark.parametrize(
    ("spoil", "reason", "message"),
    [
        (_tamper, "IntegrityError", "sha256 of model.skops is "),
        (_untrusted, "UntrustedModel",
         "model.skops contains types ctrain does not trust, refusing to load it: "
         "test_serving_lifecycle.Doubler"),
        (_missing, "ModelNotFound", "cannot read "),
    ],
)  # fmt: skip
async def test_refused_model_keeps_the_server_up_and_not_ready(
    model_dir: Path, spoil: object, reason: str, message: str
) -> None:
    spoil(model_dir)  # type: ignore[operator]
    app = _app(DirectorySource(model_dir))
    with pytest.raises(ModelLoadError) as refused:
        app.holder.load()
    assert refused.value.reason == reason
    async with _client(app) as c:
        ready = await c.get("/v2/health/ready")
        model_ready = await c.get("/v2/models/iris/ready")
        infer = await c.post("/v2/models/iris/infer", json=BODY)
        live = await c.get("/v2/health/live")
        metrics = (await c.get("/metrics")).text
    body = ready.json()
    assert ready.status_code == 503
    assert model_ready.status_code == 503
    assert model_ready.json() == body
    assert (body["ready"], body["state"], body["reason"]) == (False, "Failed", reason)
    assert body["message"].startswith(message), body["message"]
    assert infer.status_code == 503
    assert infer.json()["error"] == f"model iris is not ready: {body['message']}"
    assert live.status_code == 200
    assert f'ctrain_serving_model_load_failures_total{{model="iris",reason="{reason}"}} 1.0' in (
        metrics
    )


async def test_background_retry_recovers_once_the_model_is_fixed(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ctrain.serving")
    good = (model_dir / "model.skops").read_bytes()
    _tamper(model_dir)
    app = _app(DirectorySource(model_dir))
    async with _client(app) as c:
        await app.startup()
        for _ in range(200):
            if app.holder.state == "Failed":
                break
            await asyncio.sleep(0.02)
        assert (await c.get("/v2/health/ready")).status_code == 503
        (model_dir / "model.skops").write_bytes(good)
        for _ in range(200):
            if app.holder.ready:
                break
            await asyncio.sleep(0.02)
        ready = await c.get("/v2/health/ready")
        infer = await c.post("/v2/models/iris/infer", json=BODY)
        await app.shutdown()
    assert ready.status_code == 200
    assert infer.status_code == 200
    assert "model iris is not ready (IntegrityError)" in caplog.text
    assert "model iris is ready" in caplog.text


async def test_metadata_json_that_is_not_json_is_refused(model_dir: Path) -> None:
    (model_dir / "metadata.json").write_text("{")
    app = _app(DirectorySource(model_dir))
    with pytest.raises(ModelLoadError, match=r"metadata\.json is not valid JSON"):
        app.holder.load()
    assert app.holder.status()["reason"] == "IntegrityError"


async def test_feature_count_mismatch_is_refused(model_dir: Path) -> None:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    metadata["features"] = ["a", "b"]
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    app = _app(DirectorySource(model_dir))
    with pytest.raises(ModelLoadError, match="lists 2 features, the model expects 4"):
        app.holder.load()
    assert app.holder.status()["reason"] == "InvalidModel"
