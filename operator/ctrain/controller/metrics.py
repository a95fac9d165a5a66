"""The operator's Prometheus metrics, served on `--metrics-port` (default 8080).

Reconciliations and failures per kind with their durations, objects per phase, trainings
started and finished, promotions and rollbacks, the holdout metrics of the model versions
in use: what an SRE graphs and alerts on.
"""

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = [
    "MODEL_METRICS",
    "MODEL_PERFORMANCE",
    "PERFORMANCE_DEGRADED",
    "PHASES",
    "PROMOTIONS",
    "RECONCILE_ERRORS",
    "RECONCILE_SECONDS",
    "RECONCILIATIONS",
    "REGISTRY",
    "ROLLBACKS",
    "TRAININGS_FINISHED",
    "TRAININGS_STARTED",
    "ModelMetricCollector",
    "PhaseCollector",
    "serve",
]

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILIATIONS = Counter(
    "ctrain_reconciliations", "Reconciliations by kind", ["kind"], registry=REGISTRY
)
RECONCILE_ERRORS = Counter(
    "ctrain_reconcile_errors", "Reconciliations that raised, by kind", ["kind"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "ctrain_reconcile_duration_seconds",
    "Time one reconciliation took",
    ["kind"],
    registry=REGISTRY,
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
TRAININGS_STARTED = Counter("ctrain_trainings_started", "Training Jobs created", registry=REGISTRY)
TRAININGS_FINISHED = Counter(
    "ctrain_trainings_finished", "TrainingJobs finished, by outcome", ["outcome"], registry=REGISTRY
)
PROMOTIONS = Counter(
    "ctrain_promotions", "Models that became the champion", ["model"], registry=REGISTRY
)
ROLLBACKS = Counter(
    "ctrain_rollbacks", "Serving rollouts undone, by kind of failure", ["reason"], registry=REGISTRY
)

# Live performance (status.performance): each version's metric on labelled predictions, as
# the last check of a ModelDeployment measured it, and whether PerformanceDegraded is True
# (0 when it is False or Unknown: the alert fires on evidence only).
MODEL_PERFORMANCE = Gauge(
    "ctrain_model_performance",
    "Live performance of a model version on its labelled predictions",
    ["namespace", "deployment", "model", "version", "metric"],
    registry=REGISTRY,
)
PERFORMANCE_DEGRADED = Gauge(
    "ctrain_model_performance_degraded",
    "1 while the ModelDeployment's PerformanceDegraded condition is True, else 0",
    ["namespace", "deployment", "model"],
    registry=REGISTRY,
)


class PhaseCollector(Collector):
    """`ctrain_objects{kind, phase}`: how many objects are in each phase right now."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.phases: dict[tuple[str, str], str] = {}  # (kind, uid) -> phase

    def record(self, kind: str, uid: str, phase: str | None) -> None:
        with self.lock:
            if phase is None:
                self.phases.pop((kind, uid), None)
            else:
                self.phases[(kind, uid)] = phase

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ctrain_objects", "Objects by kind and phase", labels=["kind", "phase"]
        )
        counts: dict[tuple[str, str], int] = {}
        with self.lock:
            for (kind, _uid), phase in self.phases.items():
                counts[(kind, phase)] = counts.get((kind, phase), 0) + 1
        for (kind, phase), count in sorted(counts.items()):
            family.add_metric([kind, phase], count)
        yield family


PHASES = PhaseCollector()
REGISTRY.register(PHASES)

VersionMetrics = tuple[str, str, Mapping[str, float]]  # model, version, metric: value


class ModelMetricCollector(Collector):
    """`ctrain_model_metric{model, version, metric}`: each version's evaluation metrics on
    its holdout, for the versions objects follow (a champion, `latest`, a pinned version),
    read from the registry readings the operator already keeps. Series exist only for
    versions in use, so the cardinality is bounded by the objects, not by the registry's
    history; a version nobody follows any more drops out at the next scrape."""

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[VersionMetrics]] = lambda: ()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "ctrain_model_metric",
            "Evaluation metrics of each model version in use, on its holdout",
            labels=["model", "version", "metric"],
        )
        # Two registries can hold a model of the same name: one series per label set.
        seen: dict[tuple[str, str, str], float] = {}
        for model, version, values in self.source():
            for metric, value in values.items():
                seen.setdefault((model, version, metric), float(value))
        for labels, value in sorted(seen.items()):
            family.add_metric(list(labels), value)
        yield family


MODEL_METRICS = ModelMetricCollector()
REGISTRY.register(MODEL_METRICS)


def serve(port: int) -> None:
    """Expose the metrics over HTTP on all interfaces (the chart puts a Service in front)."""
    start_http_server(port, registry=REGISTRY)
