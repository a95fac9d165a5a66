"""Prometheus metrics of one server, in a registry of its own.

A private `CollectorRegistry` (not prometheus-client's global one) lets tests build
several apps in one process. The hot path stays cheap: label children are bound once
and cached, each request costs one counter increment and one histogram observation,
and drift gauges are not updated per request at all: a custom collector computes them
from the drift monitor when Prometheus scrapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ctrain.serving.drift import DriftSnapshot

__all__ = ["CONTENT_TYPE", "ServingMetrics"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

# () -> (model, version, snapshot), or None while no model with statistics is loaded.
DriftSource = Callable[[], tuple[str, str, DriftSnapshot] | None]
# () -> (inference requests in progress, bytes of their bodies).
LoadSource = Callable[[], tuple[int, int]]


class ServingMetrics:
    """Every metric `ctrain serve` exports, with cheap recording methods."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "ctrain_serving_requests", "HTTP requests by route and status code",
            ["route", "code"], registry=r,
        )  # fmt: skip
        self.errors = Counter(
            "ctrain_serving_errors", "Failed requests by route and error kind",
            ["route", "kind"], registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "ctrain_serving_request_duration_seconds", "Time to answer a request, by route",
            ["route"], buckets=_LATENCY_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_requests = Histogram(
            "ctrain_serving_batch_requests", "Requests coalesced into one predict call",
            buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "ctrain_serving_batch_rows", "Rows in one predict call",
            buckets=_BATCH_BUCKETS, registry=r,
        )  # fmt: skip
        self.rows_predicted = Counter(
            "ctrain_serving_rows_predicted", "Rows the model predicted", ["model"], registry=r
        ).labels(model)
        self.model_info = Gauge(
            "ctrain_serving_model_info", "The served model version (value 1)",
            ["model", "version", "estimator"], registry=r,
        )  # fmt: skip
        self.model_loaded = Gauge(
            "ctrain_serving_model_loaded", "1 once the model is loaded and ready, else 0",
            ["model"], registry=r,
        ).labels(model)  # fmt: skip
        self.load_failures = Counter(
            "ctrain_serving_model_load_failures", "Failed attempts to load the model, by reason",
            ["model", "reason"], registry=r,
        )  # fmt: skip
        self._request_children: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        children = self._request_children.get((route, code))
        if children is None:
            children = (self.requests.labels(route, str(code)), self.latency.labels(route))
            self._request_children[(route, code)] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_error(self, route: str, kind: str) -> None:
        self.errors.labels(route, kind).inc()

    def observe_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)
        self.rows_predicted.inc(rows)

    def model_ready(self, version: str, estimator: str) -> None:
        self.model_info.clear()
        self.model_info.labels(self.model, version, estimator).set(1)
        self.model_loaded.set(1)

    def model_failed(self, reason: str) -> None:
        self.model_loaded.set(0)
        self.load_failures.labels(self.model, reason).inc()

    def watch_drift(self, source: DriftSource) -> None:
        """Export the drift statistics `source` returns at each scrape."""
        self.registry.register(_DriftCollector(source))

    def watch_load(self, source: LoadSource) -> None:
        """Export the requests in progress `source` returns at each scrape (no hot-path cost)."""
        self.registry.register(_LoadCollector(source))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LoadCollector(Collector):
    def __init__(self, source: LoadSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        requests, body_bytes = self._source()
        yield GaugeMetricFamily(
            "ctrain_serving_requests_in_progress",
            "Inference requests admitted and not yet answered (--max-concurrency bounds it)",
            value=requests,
        )
        yield GaugeMetricFamily(
            "ctrain_serving_request_bytes_in_progress",
            "Bytes of the bodies of those requests (--max-inflight-bytes bounds it)",
            value=body_bytes,
        )

    def describe(self) -> Iterator[Metric]:
        return iter(())


class _DriftCollector(Collector):
    def __init__(self, source: DriftSource) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        psi = GaugeMetricFamily(
            "ctrain_serving_drift_psi",
            "Population Stability Index of a feature over the drift window",
            labels=["model", "version", "feature"],
        )
        score = GaugeMetricFamily(
            "ctrain_serving_drift_score",
            "Mean PSI over the monitored features (the overall drift score)",
            labels=["model", "version"],
        )
        samples = GaugeMetricFamily(
            "ctrain_serving_drift_samples",
            "Served rows in the drift window",
            labels=["model", "version"],
        )
        current = self._source()
        if current is not None:
            model, version, snapshot = current
            samples.add_metric([model, version], snapshot.samples)
            if snapshot.score is not None:
                score.add_metric([model, version], snapshot.score)
            for feature, value in snapshot.features.items():
                if value is not None:
                    psi.add_metric([model, version, feature], value)
        yield psi
        yield score
        yield samples

    def describe(self) -> Iterator[Metric]:
        return iter(())
