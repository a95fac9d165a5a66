"""Shared helpers of the serving tests: models fitted in-process, and a real server.

Kept out of conftest.py (owned by the lead) and imported explicitly by
`test_serving_*.py`. Models are small and fitted once per process (lru_cache).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from ctrain.serving import ModelHolder, ServingApp, StaticSource
from ctrain.serving.server import uvicorn_config

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


def reference_stats(
    rows: np.ndarray, features: list[str], kinds: Mapping[str, str], bins: int = 10
) -> dict[str, Any]:
    """reference.json as docs/contracts.md describes it (quantile edges, frequencies)."""
    stats: dict[str, Any] = {}
    for j, name in enumerate(features):
        column = rows[:, j]
        if kinds.get(name) == "categorical":
            values, counts = np.unique(column.astype(str), return_counts=True)
            stats[name] = {
                "kind": "categorical",
                "frequencies": {
                    str(v): c / len(column) for v, c in zip(values, counts, strict=True)
                },
            }
        else:
            column = column.astype(float)
            edges = np.unique(np.quantile(column, np.linspace(0, 1, bins + 1)))
            counts, _ = np.histogram(column, bins=edges)
            stats[name] = {
                "kind": "numeric",
                "edges": edges.tolist(),
                "frequencies": (counts / counts.sum()).tolist(),
            }
    return {"rows": len(rows), "features": stats}


@functools.lru_cache
def iris_classifier() -> tuple[Pipeline, dict[str, Any], dict[str, Any], np.ndarray]:
    """(pipeline with string labels, metadata.json, reference.json, training rows)."""
    data = load_iris()
    x = data.data
    y = np.asarray(IRIS_CLASSES, dtype=object)[data.target]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
    metadata = {
        "model": "iris",
        "version": "3",
        "task": "classification",
        "target": "species",
        "features": IRIS_FEATURES,
        "featureTypes": {f: "numeric" for f in IRIS_FEATURES},
        "classes": IRIS_CLASSES,
    }
    return model, metadata, reference_stats(x, IRIS_FEATURES, {}), x


@functools.lru_cache
def int_label_classifier() -> tuple[Pipeline, dict[str, Any]]:
    """Iris with integer labels 0, 1, 2 (predict is INT64)."""
    data = load_iris()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(data.data, data.target)
    return model, {"model": "iris-int", "version": "1", "features": IRIS_FEATURES}


@functools.lru_cache
def regressor() -> tuple[Pipeline, dict[str, Any], np.ndarray]:
    data = load_diabetes()
    features = [f"x{i}" for i in range(data.data.shape[1])]
    model = make_pipeline(StandardScaler(), LinearRegression()).fit(data.data, data.target)
    return model, {"model": "diabetes", "version": "2", "features": features}, data.data


@functools.lru_cache
def mixed_classifier() -> tuple[Pipeline, dict[str, Any], dict[str, Any]]:
    """A numeric and a categorical feature (input rows are an object array)."""
    rng = np.random.default_rng(0)
    size = rng.normal(10, 2, 400)
    color = rng.choice(["red", "green", "blue"], 400)
    y = np.where((size > 10) | (color == "red"), "big", "small")
    x = np.empty((400, 2), dtype=object)
    x[:, 0], x[:, 1] = size, color
    pre = ColumnTransformer(
        [("num", StandardScaler(), [0]), ("cat", OneHotEncoder(handle_unknown="ignore"), [1])]
    )
    model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(x, y)
    kinds = {"size": "numeric", "color": "categorical"}
    metadata = {"model": "shapes", "version": "1", "features": ["size", "color"],
                "featureTypes": kinds}  # fmt: skip
    return model, metadata, reference_stats(x, ["size", "color"], kinds)


def make_app(
    estimator: Any,
    metadata: Mapping[str, Any],
    reference: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    load: bool = True,
    **app_options: Any,
) -> ServingApp:
    """An app over an in-memory model, loaded synchronously unless `load=False`."""
    source = StaticSource(estimator, metadata, reference, "s3://models/ctrain/x/reference.json")
    holder = ModelHolder(name or str(metadata["model"]), source, retry_initial=0.05)
    app = ServingApp(holder, **app_options)
    if load:
        holder.load()
    return app


def write_model_dir(
    path: Path,
    estimator: Any,
    metadata: Mapping[str, Any],
    reference: Mapping[str, Any] | None,
) -> Path:
    """The registry layout in a local directory (what `ctrain serve --model-dir` reads)."""
    import skops.io

    path.mkdir(parents=True, exist_ok=True)
    data = skops.io.dumps(estimator)
    (path / "model.skops").write_bytes(data)
    meta = {**metadata, "modelFile": "model.skops", "modelSha256": hashlib.sha256(data).hexdigest()}
    (path / "metadata.json").write_text(json.dumps(meta))
    if reference is not None:
        (path / "reference.json").write_text(json.dumps(reference))
    return path


@contextmanager
def running_server(app: ServingApp, **config: Any) -> Iterator[str]:
    """Serve `app` as `ctrain serve` does, on 127.0.0.1:<free port>, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, limits=app.limits, **config))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started:
                break
            if not thread.is_alive():
                raise RuntimeError("uvicorn stopped before it started")
            threading.Event().wait(0.01)
        else:
            raise RuntimeError("uvicorn did not start in 5s")
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@functools.lru_cache
def slow_classifier() -> tuple[Any, dict[str, Any], np.ndarray]:
    """A model whose prediction takes seconds for 10,000 rows (a k-d tree, 200 neighbours)."""
    from sklearn.datasets import make_classification
    from sklearn.neighbors import KNeighborsClassifier

    x, y = make_classification(n_samples=20_000, n_features=8, random_state=0)
    model = KNeighborsClassifier(n_neighbors=200, algorithm="kd_tree").fit(x, y)
    features = [f"f{i}" for i in range(8)]
    return model, {"model": "slow", "version": "1", "features": features}, x


CTRAIN = Path(sys.executable).parent / "ctrain"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A `ctrain serve` process: its Popen, base URL and log file."""

    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def rss_bytes(self) -> int:
        """Resident memory of the process (and its children), from /proc."""
        return sum(_rss(pid) for pid in (self.process.pid, *_children(self.process.pid)))

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then wait; SIGKILL after `timeout`. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@contextmanager
def serve_process(
    model_dir: Path, log: Path, *extra: str, env: Mapping[str, str] | None = None
) -> Iterator[ServerProcess]:
    """`ctrain serve --model-dir` in a subprocess, output to `log`, stopped by pid; ready."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(CTRAIN), "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
             "--port", str(port), *extra],
            env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = ServerProcess(process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"ctrain serve exited with {process.returncode}:\n{server.output()}"
                )
            try:
                if httpx.get(f"{server.base}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ctrain serve not ready in 120 s:\n{server.output()}")
            time.sleep(0.1)
        yield server
    finally:
        server.stop()


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass  # the process ended meanwhile
    return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as children:
            return [int(c) for c in children.read().split()]
    except OSError:
        return []
