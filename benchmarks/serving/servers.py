"""The servers under test, and the model they all serve (see README.md).

- the ceiling: an ASGI app that predicts nothing, on the same stack (`ceiling.py`);
- `ctrain serve`: one worker; one worker with the prediction log on (to a moto S3
  server over HTTP, flushing every 5 s so writes happen during the measurement); two
  workers;
- MLServer 1.7.1 with mlserver-sklearn, from its own venv, in both its configurations.

Every server gets the same fitted model (StandardScaler + LogisticRegression, 20
features, 3 classes) and the same request bodies.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PYTHON = Path(sys.executable)
CTRAIN = PYTHON.parent / "ctrain"
MLSERVER = ROOT / "benchmarks" / ".venv-mlserver" / "bin" / "mlserver"
MODEL = "bench"
N_FEATURES = 20


@dataclass(frozen=True)
class Server:
    """How to start one server under test."""

    name: str
    command: list[str]
    port: int
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    cores: int = 1  # CPUs it may use (the load generator gets the rest, or shares)
    payload: str | None = None  # measured with this payload only


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fit_model() -> tuple[Any, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(
        n_samples=5000, n_features=N_FEATURES, n_informative=10, n_classes=3, random_state=0
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    return model, x


def _reference(x: np.ndarray, features: list[str], bins: int = 10) -> dict[str, Any]:
    stats = {}
    for j, name in enumerate(features):
        edges = np.unique(np.quantile(x[:, j], np.linspace(0, 1, bins + 1)))
        counts, _ = np.histogram(x[:, j], bins=edges)
        stats[name] = {"kind": "numeric", "edges": edges.tolist(),
                       "frequencies": (counts / counts.sum()).tolist()}  # fmt: skip
    return {"rows": len(x), "features": stats}


def write_ctrain_dir(path: Path, model: Any, x: np.ndarray) -> None:
    import skops.io

    path.mkdir(parents=True)
    data = skops.io.dumps(model)
    (path / "model.skops").write_bytes(data)
    features = [f"f{i}" for i in range(N_FEATURES)]
    metadata = {
        "model": MODEL, "version": "1", "task": "classification", "features": features,
        "featureTypes": dict.fromkeys(features, "numeric"),
        "modelFile": "model.skops", "modelSha256": hashlib.sha256(data).hexdigest(),
    }  # fmt: skip
    (path / "metadata.json").write_text(json.dumps(metadata))
    (path / "reference.json").write_text(json.dumps(_reference(x, features)))


def write_mlserver_dir(path: Path, model: Any, ports: dict[str, int], workers: int) -> None:
    import joblib

    (path / MODEL).mkdir(parents=True)
    joblib.dump(model, path / MODEL / "model.joblib")
    (path / MODEL / "model-settings.json").write_text(json.dumps({
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }))  # fmt: skip
    (path / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": ports["http"], "grpc_port": ports["grpc"],
        "metrics_port": ports["metrics"], "parallel_workers": workers,
    }))  # fmt: skip


def ctrain_servers(work: Path, model: Any, x: np.ndarray, s3: dict[str, str]) -> list[Server]:
    """ctrain alone, with the prediction log, and with two workers."""
    model_dir = work / "ctrain-model"
    write_ctrain_dir(model_dir, model, x)
    servers = []
    for name, extra, cores in [
        ("ctrain", [], 1),
        ("ctrain, prediction log", ["--prediction-log", "--prediction-log-flush-seconds", "5",
                                    "--bucket", s3["bucket"], "--prefix", "bench"], 1),
        ("ctrain, 2 workers", ["--workers", "2"], 2),
    ]:  # fmt: skip
        port = free_port()
        command = [str(CTRAIN), "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
                   "--port", str(port), "--log-level", "warning", *extra]  # fmt: skip
        logs = "--prediction-log" in extra
        env = {k: v for k, v in s3.items() if k != "bucket"} if logs else {}
        servers.append(Server(name, command, port, env=env, cores=cores))
    return servers


def ceiling_server(work: Path, answers: dict[str, Path]) -> list[Server]:
    """One ceiling per payload: each answers what ctrain answers for that payload."""
    servers = []
    for payload, answer in answers.items():
        port = free_port()
        command = [str(PYTHON), str(HERE / "ceiling.py"), "--port", str(port),
                   "--response", str(answer)]  # fmt: skip
        servers.append(Server("ceiling", command, port, payload=payload))
    return servers


def mlserver_servers(work: Path, model: Any, workers: list[int]) -> list[Server]:
    servers = []
    for count in workers:
        ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
        folder = work / f"mlserver-w{count}"
        write_mlserver_dir(folder, model, ports, count)
        command = [str(MLSERVER), "start", str(folder)]
        servers.append(Server(f"MLServer, parallel_workers={count}", command, ports["http"],
                              folder))  # fmt: skip
    return servers
