"""`ctrain serve` on real sockets: Triton's own v2 client, and the command itself."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from serving_fixtures import iris_classifier, make_app, running_server, write_model_dir
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.unit

CTRAIN = Path(sys.executable).parent / "ctrain"


@pytest.fixture(scope="module")
def address() -> Iterator[str]:
    model, metadata, reference, _ = iris_classifier()
    with running_server(make_app(model, metadata, reference)) as address:
        yield address


def test_tritonclient_health_and_metadata(address: str) -> None:
    client = triton.InferenceServerClient(url=address)
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("iris")
        assert not client.is_model_ready("nope")
        metadata = client.get_model_metadata("iris")
        assert metadata["name"] == "iris"
        assert metadata["versions"] == ["3"]
        assert metadata["platform"] == "sklearn"
        assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
        assert client.get_server_metadata()["name"] == "ctrain"
        with pytest.raises(InferenceServerException, match="model 'nope' not found"):
            client.get_model_metadata("nope")
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary-input", "json-input"])
@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_tritonclient_infer(address: str, binary: bool, datatype: str) -> None:
    model, _, _, x = iris_classifier()
    rows = x[[0, 60, 120, 149]].astype(np.float64 if datatype == "FP64" else np.float32)
    client = triton.InferenceServerClient(url=address)
    try:
        tensor = triton.InferInput("input-0", list(rows.shape), datatype)
        tensor.set_data_from_numpy(rows, binary_data=binary)
        outputs = [
            triton.InferRequestedOutput("predict", binary_data=False),
            triton.InferRequestedOutput("predict_proba", binary_data=False),
        ]
        result = client.infer("iris", [tensor], outputs=outputs, request_id="t-1")
    finally:
        client.close()
    expected_rows = rows.astype(np.float64)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")]
    assert labels == model.predict(expected_rows).tolist()
    np.testing.assert_allclose(
        result.as_numpy("predict_proba"), model.predict_proba(expected_rows), rtol=1e-12
    )
    assert result.get_response()["id"] == "t-1"
    assert result.get_response()["model_version"] == "3"


def test_tritonclient_bytes_input(address: str) -> None:
    model, _, _, x = iris_classifier()
    rows = np.asarray([[str(v) for v in x[7]]], dtype=np.object_)
    client = triton.InferenceServerClient(url=address)
    try:
        tensor = triton.InferInput("input-0", [1, 4], "BYTES")
        tensor.set_data_from_numpy(rows)  # Triton's length-prefixed binary strings
        result = client.infer("iris", [tensor])
    finally:
        client.close()
    (label,) = result.as_numpy("predict")
    assert (label.decode() if isinstance(label, bytes) else label) == model.predict(x[7:8])[0]


# -- the command ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _serve(model_dir: Path, *extra: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`ctrain serve --model-dir` in a subprocess, host from POD_IP; stopped by pid."""
    port = _free_port()
    env = {**os.environ, "POD_IP": "127.0.0.1"}
    process = subprocess.Popen(
        [str(CTRAIN), "serve", "--model-dir", str(model_dir), "--port", str(port), *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0]
            try:
                httpx.get(f"{base}/v2/health/live", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("ctrain serve did not start listening in 60s")
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(base: str, want: int) -> httpx.Response:
    deadline = time.monotonic() + 60
    while True:
        response = httpx.get(f"{base}/v2/health/ready", timeout=5)
        if response.status_code == want or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


def test_ctrain_serve_model_dir(tmp_path: Path) -> None:
    model, metadata, reference, x = iris_classifier()
    model_dir = write_model_dir(tmp_path / "iris", model, metadata, reference)
    with _serve(model_dir, "--max-batch-rows", "64", "--drift-window", "100") as (process, base):
        ready = _wait_ready(base, 200)
        assert ready.json() == {"name": "iris", "ready": True, "state": "Ready", "version": "3"}
        body: dict[str, Any] = {"inputs": [{"name": "input-0", "datatype": "FP64",
                                            "shape": [150, 4], "data": x.tolist()}]}  # fmt: skip
        response = httpx.post(f"{base}/v2/models/iris/infer", json=body, timeout=10)
        assert response.status_code == 200
        assert response.json()["outputs"][0]["data"] == model.predict(x).tolist()
        drift = httpx.get(f"{base}/drift").json()
        assert drift["samples"] == 100  # --drift-window
        metrics = httpx.get(f"{base}/metrics").text
        assert "ctrain_serving_requests_total" in metrics
        assert "_created" not in metrics
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    assert "loading model iris from" in output
    assert "model iris is ready" in output
    assert "shutting down: model iris" in output
    assert "POST /v2/models/iris/infer" not in output  # access log off by default


def test_ctrain_serve_stays_up_and_not_ready_on_a_tampered_model(tmp_path: Path) -> None:
    model, metadata, reference, _ = iris_classifier()
    model_dir = write_model_dir(tmp_path / "iris", model, metadata, reference)
    meta = json.loads((model_dir / "metadata.json").read_text())
    meta["modelSha256"] = "0" * 64
    (model_dir / "metadata.json").write_text(json.dumps(meta))
    with _serve(model_dir) as (process, base):
        deadline = time.monotonic() + 60
        while True:
            body = httpx.get(f"{base}/v2/health/ready").json()
            if body["state"] == "Failed" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        response = httpx.get(f"{base}/v2/models/iris/ready")
        assert response.status_code == 503
        assert response.json()["reason"] == "IntegrityError"
        assert "metadata.json says 0000" in response.json()["message"]
        time.sleep(1.5)  # a retry happens; the process is still alive and answering
        assert process.poll() is None
        assert httpx.get(f"{base}/v2/health/live").status_code == 200
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert "model iris is not ready (IntegrityError)" in output
