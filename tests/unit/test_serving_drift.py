"""Drift statistics (PSI over a sliding window), GET /drift and /metrics."""

from __future__ import annotations

import math
import re
import tracemalloc
from typing import Any

import httpx
import numpy as np
import pytest
from serving_fixtures import iris_classifier, make_app, mixed_classifier, reference_stats

from ctrain.serving import DriftMonitor
from ctrain.serving.drift import EPSILON

pytestmark = [pytest.mark.unit, pytest.mark.anyio]

FEATURES = ["a", "b", "c"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _training(n: int = 20000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.normal(0, 1, n), rng.exponential(2, n), rng.uniform(-5, 5, n)])


def _naive_psi(rows: np.ndarray, stat: dict[str, Any]) -> float:
    """PSI straight from the definition, for one numeric feature without missing values."""
    edges = np.asarray(stat["edges"])
    bins = np.clip(np.searchsorted(edges[1:-1], rows, side="right"), 0, len(edges) - 2)
    served = np.bincount(bins, minlength=len(edges) - 1) / len(rows)
    p = np.clip(np.append(served, 0.0), EPSILON, None)  # + the (empty) missing bin
    q = np.clip(np.append(stat["frequencies"], 0.0), EPSILON, None)
    return float(((p - q) * np.log(p / q)).sum())


def test_in_distribution_rows_score_near_zero() -> None:
    reference = reference_stats(_training(), FEATURES, {})
    monitor = DriftMonitor(FEATURES, reference, window=5000)
    for batch in np.array_split(_training(5000, seed=1), 37):  # batches of any size
        monitor.observe(batch)
    snapshot = monitor.snapshot()
    assert snapshot.samples == 5000
    assert snapshot.score is not None and snapshot.score < 0.02
    assert all(v is not None and 0 <= v < 0.02 for v in snapshot.features.values())


def test_shifted_rows_score_above_threshold() -> None:
    reference = reference_stats(_training(), FEATURES, {})
    monitor = DriftMonitor(FEATURES, reference, window=5000)
    shifted = _training(3000, seed=2)
    shifted[:, 0] += 1.5  # a shift of 1.5 standard deviations in one feature
    monitor.observe(shifted)
    snapshot = monitor.snapshot()
    assert snapshot.features["a"] is not None and snapshot.features["a"] > 0.5
    assert snapshot.features["b"] is not None and snapshot.features["b"] < 0.05
    assert snapshot.score is not None and snapshot.score > 0.2
    assert snapshot.score == pytest.approx(sum(snapshot.features.values()) / 3)  # type: ignore[arg-type]


def test_the_window_slides_and_matches_the_definition() -> None:
    training = _training()
    reference = reference_stats(training, FEATURES, {})
    monitor = DriftMonitor(FEATURES, reference, window=1000)
    served = _training(4321, seed=3)
    served[:2000, 1] *= 3  # drifted at first, then back to normal
    for batch in np.array_split(served, 50):
        monitor.observe(batch)
    last = served[-1000:]
    snapshot = monitor.snapshot()
    assert snapshot.samples == 1000
    for j, name in enumerate(FEATURES):
        expected = _naive_psi(last[:, j], reference["features"][name])
        assert snapshot.features[name] == pytest.approx(expected, abs=1e-12)
    monitor.observe(_training(5000, seed=4))  # a batch larger than the window
    assert monitor.snapshot().samples == 1000


def test_empty_window() -> None:
    monitor = DriftMonitor(FEATURES, reference_stats(_training(), FEATURES, {}))
    snapshot = monitor.snapshot()
    assert (snapshot.samples, snapshot.score) == (0, None)
    assert snapshot.features == {"a": None, "b": None, "c": None}


def test_categorical_unseen_and_missing_values() -> None:
    reference = {
        "rows": 100,
        "features": {
            "size": {"kind": "numeric", "edges": [0.0, 1.0, 2.0], "frequencies": [0.5, 0.5],
                     "missing": 0.0},
            "color": {"kind": "categorical", "frequencies": {"red": 0.5, "blue": 0.5},
                      "missing": 0.2},
        },
    }  # fmt: skip
    monitor = DriftMonitor(["size", "color"], reference, window=10)
    rows = np.empty((10, 2), dtype=object)
    rows[:, 0] = [0.5] * 5 + [1.5] * 5
    rows[:, 1] = ["red"] * 4 + ["blue"] * 4 + [None, None]
    monitor.observe(rows)
    assert monitor.snapshot().features == {"size": 0.0, "color": pytest.approx(0.0, abs=1e-12)}
    rows[:, 1] = ["purple"] * 10  # never seen in training: the "other" bin
    rows[:, 0] = [np.nan] * 10
    monitor.observe(rows)  # replaces the whole window
    snapshot = monitor.snapshot()
    assert snapshot.features["color"] == pytest.approx(
        (1 - EPSILON) * math.log(1 / EPSILON)
        + (0.4 - EPSILON) * math.log(0.4 / EPSILON) * 2
        + (0.2 - EPSILON) * math.log(0.2 / EPSILON),
        rel=1e-9,
    )
    assert snapshot.features["size"] is not None and snapshot.features["size"] > 5


def test_the_window_keeps_bin_indices_not_the_clients_strings() -> None:
    """A window of 5,000 rows must not keep 5,000 client strings (of up to 1 KB each) alive."""
    reference = {
        "rows": 10,
        "features": {"color": {"kind": "categorical", "frequencies": {"red": 0.5, "blue": 0.5}}},
    }
    monitor = DriftMonitor(["color"], reference, window=5000)
    tracemalloc.start()
    try:
        for batch in range(10):
            rows = np.empty((500, 1), dtype=object)
            rows[:, 0] = [f"{batch}-{i}-" + "x" * 1000 for i in range(500)]
            monitor.observe(rows)
            del rows
        kept = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert kept < 1024 * 1024, f"the window keeps {kept / 2**20:.1f} MiB"
    snapshot = monitor.snapshot()  # every value was unseen in training: the "other" bin
    assert snapshot.samples == 5000
    assert snapshot.features["color"] == pytest.approx(
        (1 - EPSILON) * math.log(1 / EPSILON) + 2 * (0.5 - EPSILON) * math.log(0.5 / EPSILON)
    )


def test_features_without_statistics_are_not_monitored() -> None:
    reference = {"rows": 1, "features": {"a": {"kind": "numeric", "edges": [], "frequencies": []}}}
    monitor = DriftMonitor(["a", "b"], reference)
    assert not monitor.enabled
    monitor.observe(np.zeros((3, 2)))
    assert monitor.snapshot().samples == 0


# -- over HTTP -----------------------------------------------------------------------


async def test_drift_endpoint_and_metrics() -> None:
    model, metadata, reference, x = iris_classifier()
    app = make_app(model, metadata, reference)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        empty = (await client.get("/drift")).json()
        body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": list(x.shape),
                            "data": x.tolist()}]}  # fmt: skip
        assert (await client.post("/v2/models/iris/infer", json=body)).status_code == 200
        shifted = {**body, "inputs": [{**body["inputs"][0], "data": (x * 1.8).tolist()}]}
        in_distribution = (await client.get("/drift")).json()
        assert (await client.post("/v2/models/iris/infer", json=shifted)).status_code == 200
        drifted = (await client.get("/drift")).json()
        await client.post("/v2/models/iris/infer", content=b"{")
        metrics = await client.get("/metrics")
    assert empty == {
        "model": "iris", "version": "3", "samples": 0, "score": None,
        "features": dict.fromkeys(metadata["features"]),
        "reference": "s3://models/ctrain/x/reference.json",
        "computedAt": empty["computedAt"],
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", empty["computedAt"])
    assert in_distribution["samples"] == 150
    assert in_distribution["score"] < 0.01  # the training rows themselves
    assert drifted["samples"] == 300
    assert drifted["score"] > 0.2
    assert set(drifted["features"]) == set(metadata["features"])

    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    for name in (
        'ctrain_serving_requests_total{code="200",route="infer"} 2.0',
        'ctrain_serving_requests_total{code="400",route="infer"} 1.0',
        'ctrain_serving_errors_total{kind="InvalidRequest",route="infer"} 1.0',
        'ctrain_serving_request_duration_seconds_bucket{le="+Inf",route="infer"} 3.0',
        "ctrain_serving_batch_requests_count 2.0",
        "ctrain_serving_batch_rows_sum 300.0",
        'ctrain_serving_rows_predicted_total{model="iris"} 300.0',
        'ctrain_serving_model_info{estimator="StandardScaler+LogisticRegression",model="iris",'
        'version="3"} 1.0',
        'ctrain_serving_model_loaded{model="iris"} 1.0',
        'ctrain_serving_drift_samples{model="iris",version="3"} 300.0',
        'ctrain_serving_drift_score{model="iris",version="3"} ',
        'ctrain_serving_drift_psi{feature="petal_length",model="iris",version="3"} ',
    ):
        assert name in text, name


async def test_drift_without_reference_is_404_but_predictions_work() -> None:
    model, metadata, _, x = iris_classifier()
    app = make_app(model, metadata, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        drift = await client.get("/drift")
        body = {
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": x[0].tolist()}]
        }
        infer = await client.post("/v2/models/iris/infer", json=body)
    assert (drift.status_code, drift.json()) == (
        404,
        {"error": "model iris version 3 has no drift statistics"},
    )
    assert infer.status_code == 200


async def test_drift_of_a_model_with_categorical_features() -> None:
    model, metadata, reference = mixed_classifier()
    app = make_app(model, metadata, reference)
    rows = [["10.0", "red"], ["11.0", "blue"], ["9.5", "purple"], [None, None]]
    body = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [4, 2], "data": rows}]}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        bad = await client.post("/v2/models/shapes/infer", json=body)  # None: no imputer
        body["inputs"][0]["data"] = rows[:3]
        body["inputs"][0]["shape"] = [3, 2]
        good = await client.post("/v2/models/shapes/infer", json=body)
        drift = (await client.get("/drift")).json()
    assert bad.status_code == 400
    assert good.status_code == 200
    assert drift["samples"] == 3
    assert set(drift["features"]) == {"size", "color"}
