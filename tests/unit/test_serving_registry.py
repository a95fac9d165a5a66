"""Serving a model published in the registry, over a real S3 API (moto's server)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import skops.io
from serving_fixtures import iris_classifier

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.registry import Registry
from ctrain.serving import ModelHolder, ModelLoadError, RegistrySource, ServingApp
from ctrain.storage import S3Client

pytestmark = [pytest.mark.unit, pytest.mark.anyio]
pytest_plugins = ["s3_fixtures"]

BODY = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 4],
                    "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]}  # fmt: skip


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def published(registry: Registry) -> Registry:
    """iris v1 (champion) and v2 in the registry."""
    model, metadata, reference, _ = iris_classifier()
    meta = {k: v for k, v in metadata.items() if k not in ("model", "version")}
    for version in ("1", "2"):
        registry.publish(
            "iris",
            version,
            skops.io.dumps(model),
            ModelMetadata.parse(meta),
            Reference.parse(reference),
        )
    registry.set_champion("iris", "1", "test")
    return registry


def _client(app: ServingApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.parametrize(("ref", "version"), [("champion", "1"), ("latest", "2"), ("2", "2")])
async def test_serves_a_registry_version(published: Registry, ref: str, version: str) -> None:
    app = ServingApp(ModelHolder("iris", RegistrySource(published, "iris", ref), version=ref))
    app.holder.load()
    async with _client(app) as c:
        ready = await c.get("/v2/models/iris/ready")
        infer = await c.post("/v2/models/iris/infer", json=BODY)
        drift = (await c.get("/drift")).json()
    assert ready.json() == {"name": "iris", "ready": True, "state": "Ready", "version": version}
    assert infer.json()["model_version"] == version
    assert infer.json()["outputs"][0]["data"] == ["setosa", "virginica"]
    assert drift["reference"] == (
        f"s3://{published.bucket}/ctrain/iris/versions/{version}/reference.json"
    )
    assert drift["samples"] == 2


async def test_a_tampered_model_keeps_the_server_not_ready(
    published: Registry, s3_client: S3Client
) -> None:
    key = "ctrain/iris/versions/1/model.skops"
    data = bytearray(s3_client.get_object(Bucket=published.bucket, Key=key)["Body"].read())
    data[100] ^= 0xFF
    s3_client.put_object(Bucket=published.bucket, Key=key, Body=bytes(data))
    app = ServingApp(ModelHolder("iris", RegistrySource(published, "iris", "champion")))
    with pytest.raises(ModelLoadError):
        app.holder.load()
    async with _client(app) as c:
        ready = await c.get("/v2/health/ready")
        infer = await c.post("/v2/models/iris/infer", json=BODY)
    assert ready.status_code == 503
    body = ready.json()
    assert (body["state"], body["reason"]) == ("Failed", "IntegrityError")
    assert "refusing to load a modified or corrupt model" in body["message"]
    assert infer.status_code == 503


async def test_a_missing_version_is_not_ready(published: Registry) -> None:
    app = ServingApp(ModelHolder("iris", RegistrySource(published, "iris", "7")))
    with pytest.raises(ModelLoadError):
        app.holder.load()
    assert app.holder.status() == {
        "name": "iris", "ready": False, "state": "Failed", "reason": "VersionNotFound",
        "message": "model 'iris' has no version 7",
    }  # fmt: skip


def test_ctrain_serve_from_the_registry(
    published: Registry, s3_env: dict[str, str], tmp_path: Path
) -> None:
    """The command wires storage.make_s3_client + Registry from the environment."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, **s3_env, "CTRAIN_BUCKET": published.bucket, "CTRAIN_PREFIX": "ctrain"}
    command = [str(Path(sys.executable).parent / "ctrain"), "serve", "--model", "iris",
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"{base}/v2/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert ready is not None and ready.status_code == 200, ready and ready.text
        assert ready.json()["version"] == "1"  # --version defaults to champion
        infer = httpx.post(f"{base}/v2/models/iris/infer", json=BODY, timeout=10)
        assert infer.json()["outputs"][0]["data"] == ["setosa", "virginica"]
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert f"registry model iris version champion in s3://{published.bucket}/ctrain" in output
