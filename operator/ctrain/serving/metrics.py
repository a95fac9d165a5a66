"""Prometheus metrics of one server: plain counters on the hot path, families at scrape.

Requests are counted in plain Python dicts, without prometheus_client's per-value locks:
only the event loop thread records them (worker-thread results are recorded from the
loop). A scrape turns the values into prometheus_client metric families, exposed from a
private `CollectorRegistry` (tests build several apps in one process). Drift gauges and
requests in progress are computed at scrape time from their sources.

With `--workers N` every worker publishes its values (`snapshot`) and the worker that
answers a scrape adds up everyone's (`ctrain.serving.workers`): counters and histograms
are summed (a dead worker's last values stay, so counters never go back), gauges follow
their series' rule, and drift bin counts are summed before the PSI is computed.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ctrain.serving.drift import DriftSnapshot

__all__ = ["CONTENT_TYPE", "Series", "ServingMetrics", "merge_values"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)

# () -> (model, version, snapshot), or None while no model with statistics is loaded.
DriftSource = Callable[[], tuple[str, str, DriftSnapshot] | None]
# () -> (inference requests in progress, bytes of their bodies).
LoadSource = Callable[[], tuple[int, int]]

Labels = tuple[str, ...]


@dataclass
class Series:
    """One metric: its values by label values, a histogram's as [bucket counts..., sum]."""

    name: str
    help: str
    kind: str  # counter | gauge | histogram
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    merge: str = "sum"  # how workers' gauges combine: sum | min | max
    values: dict[Labels, Any] = field(default_factory=dict)

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def observe(self, value: float, labels: Labels = ()) -> None:
        counts = self.values.get(labels)
        if counts is None:
            counts = self.values[labels] = [0.0] * (len(self.buckets) + 2)
        counts[bisect.bisect_left(self.buckets, value)] += 1  # le: value <= bound
        counts[-1] += value

    def value(self, *labels: str) -> float:
        """A counter's or gauge's current value (0 if never set): for tests and logs."""
        return float(self.values.get(labels, 0.0))

    def family(self, values: Mapping[Labels, Any]) -> Metric:
        if self.kind == "histogram":
            histogram = HistogramMetricFamily(self.name, self.help, labels=self.labels)
            for labels, counts in values.items():
                cumulative, total = [], 0.0
                for bound, count in zip((*self.buckets, math.inf), counts, strict=False):
                    total += count
                    cumulative.append((_le(bound), total))
                histogram.add_metric(list(labels), cumulative, sum_value=counts[-1])
            return histogram
        family_type = CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily
        family = family_type(self.name, self.help, labels=self.labels)
        for labels, value in values.items():
            family.add_metric(list(labels), value)
        return family


def _le(bound: float) -> str:
    return "+Inf" if bound == math.inf else str(float(bound))


def merge_values(series: Series, parts: Iterable[Mapping[Labels, Any]]) -> dict[Labels, Any]:
    """Several workers' values of one series, combined by its rule."""
    merged: dict[Labels, Any] = {}
    for values in parts:
        for labels, value in values.items():
            if labels not in merged:
                merged[labels] = list(value) if series.kind == "histogram" else value
            elif series.kind == "histogram":
                merged[labels] = [a + b for a, b in zip(merged[labels], value, strict=True)]
            elif series.kind == "counter" or series.merge == "sum":
                merged[labels] += value
            else:
                merged[labels] = (min if series.merge == "min" else max)(merged[labels], value)
    return merged


class ServingMetrics:
    """Every metric `ctrain serve` exports, with cheap recording methods."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.series: dict[str, Series] = {}
        add = self.add
        self.requests = add("ctrain_serving_requests", "HTTP requests by route and status code",
                            "counter", ("route", "code"))  # fmt: skip
        self.errors = add("ctrain_serving_errors", "Failed requests by route and error kind",
                          "counter", ("route", "kind"))  # fmt: skip
        self.latency = add("ctrain_serving_request_duration_seconds",
                           "Time to answer a request, by route", "histogram", ("route",),
                           _LATENCY_BUCKETS)  # fmt: skip
        self.batch_requests = add("ctrain_serving_batch_requests",
                                  "Requests coalesced into one predict call", "histogram",
                                  buckets=_BATCH_BUCKETS)  # fmt: skip
        self.batch_rows = add("ctrain_serving_batch_rows", "Rows in one predict call",
                              "histogram", buckets=_BATCH_BUCKETS)  # fmt: skip
        self.rows_predicted = add("ctrain_serving_rows_predicted", "Rows the model predicted",
                                  "counter", ("model",))  # fmt: skip
        self.model_info = add("ctrain_serving_model_info", "The served model version (value 1)",
                              "gauge", ("model", "version", "estimator"), merge="max")  # fmt: skip
        self.model_loaded = add("ctrain_serving_model_loaded",
                                "1 once the model is loaded and ready, else 0", "gauge",
                                ("model",), merge="min")  # fmt: skip
        self.load_failures = add("ctrain_serving_model_load_failures",
                                 "Failed attempts to load the model, by reason", "counter",
                                 ("model", "reason"))  # fmt: skip
        self.model_loaded.set((model,), 0)
        self._drift: DriftSource | None = None
        self._load: LoadSource | None = None
        # With --workers: () -> the other workers' snapshots, to add to ours at a scrape.
        self.peers: Callable[[], list[dict[str, Any]]] | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))

    def add(
        self,
        name: str,
        help: str,
        kind: str,
        labels: tuple[str, ...] = (),
        buckets: tuple[float, ...] = (),
        merge: str = "sum",
    ) -> Series:
        """Declare a series (the prediction log adds its own)."""
        series = Series(name, help, kind, labels, buckets, merge)
        self.series[name] = series
        return series

    # -- recording (event loop thread only) ----------------------------------------------

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        self.requests.inc((route, str(code)))
        self.latency.observe(seconds, (route,))

    def observe_error(self, route: str, kind: str) -> None:
        self.errors.inc((route, kind))

    def observe_batch(self, requests: int, rows: int) -> None:
        self.batch_requests.observe(requests)
        self.batch_rows.observe(rows)
        self.rows_predicted.inc((self.model,), rows)

    def model_ready(self, version: str, estimator: str) -> None:
        self.model_info.values.clear()
        self.model_info.set((self.model, version, estimator), 1)
        self.model_loaded.set((self.model,), 1)

    def model_failed(self, reason: str) -> None:
        self.model_loaded.set((self.model,), 0)
        self.load_failures.inc((self.model, reason))

    def watch_drift(self, source: DriftSource) -> None:
        """Export the drift statistics `source` returns at each scrape."""
        self._drift = source

    def watch_load(self, source: LoadSource) -> None:
        """Export the requests in progress `source` returns at each scrape."""
        self._load = source

    # -- scraping ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """This process's values, JSON-ready (what a worker publishes)."""
        values: dict[str, Any] = {
            name: [[list(k), v] for k, v in s.values.items()] for name, s in self.series.items()
        }
        if self._load is not None:
            requests, body_bytes = self._load()
            values["_load"] = [requests, body_bytes]
        return values

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def families(self) -> Iterator[Metric]:
        # Other workers' snapshots (`ctrain.serving.workers`): counters and histograms
        # of every worker that published, gauges of the live ones only.
        peers = self.peers() if self.peers is not None else []
        live = [peer for peer in peers if peer.get("live")]
        for name, series in self.series.items():
            if not peers:
                yield series.family(series.values)
                continue
            parts = [series.values]
            for peer in peers if series.kind != "gauge" else live:
                parts.append({tuple(labels): value for labels, value in peer.get(name, [])})
            yield series.family(merge_values(series, parts))
        loads = [self._load() if self._load is not None else (0, 0)]
        loads += [peer["_load"] for peer in live if "_load" in peer]
        yield GaugeMetricFamily(
            "ctrain_serving_requests_in_progress",
            "Inference requests admitted and not yet answered (--max-concurrency bounds it)",
            value=sum(load[0] for load in loads),
        )
        yield GaugeMetricFamily(
            "ctrain_serving_request_bytes_in_progress",
            "Bytes of the bodies of those requests (--max-inflight-bytes bounds it)",
            value=sum(load[1] for load in loads),
        )
        yield from _drift_families(self._drift() if self._drift is not None else None)


def _drift_families(current: tuple[str, str, DriftSnapshot] | None) -> Iterator[Metric]:
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
        "ctrain_serving_drift_samples", "Served rows in the drift window",
        labels=["model", "version"],
    )  # fmt: skip
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


class _Collector(Collector):
    def __init__(self, metrics: ServingMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return self._metrics.families()

    def describe(self) -> Iterator[Metric]:
        return iter(())
