"""Live performance: each served version's metric on its logged predictions that have
labels, the body of `ctrain evaluate-live` (a pod the operator runs per ModelDeployment).

It is the trainer's evaluation applied to production: the same metric code
(`evaluate.score_predictions`) on the rows of `ctrain.feedback.joining`, per model version,
over a window that ends now. Each version's point is appended to its performance.json
(bounded history); the result, every version's value and counts, is the pod's
termination message, from which the operator sets `status.performance`.

What is computed, per version with logged predictions in the window:
- the asked metric (`--metric`; default: the task's first default, accuracy or r2) and
  the task's default metrics (for reports), on the labelled rows;
- classes compare as canonical text (`feedback.class_text`); regression labels that are
  not numbers are left out (`used` < `labelled`);
- a metric that cannot be computed on these rows (e.g. roc_auc_ovr with one class
  labelled) is left out of `metrics`; the asked one then has no value, which the
  operator reads as "not enough evidence", never as a pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from ctrain.api import DEFAULT_METRICS, METRIC_TASKS, Metric, Reason, Task
from ctrain.api.contracts import (
    ModelMetadata,
    PerformanceMeasured,
    PerformancePoint,
    VersionPerformance,
)
from ctrain.feedback import (
    LABEL,
    PREDICTION,
    VERSION,
    Joined,
    Window,
    append_point,
    class_text,
    join,
)
from ctrain.registry import InvalidReference, Layout, Registry, RegistryError, VersionNotFound
from ctrain.storage import S3Client
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.evaluate import PROBA_METRICS, score_predictions

__all__ = ["DEFAULT_MAX_ROWS", "LiveRequest", "evaluate_live", "score_version"]

log = logging.getLogger(__name__)

DEFAULT_MAX_ROWS = 1_000_000


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LiveRequest:
    """What to measure: the model, the metric (None: the task's default) and the window."""

    model: str
    metric: Metric | None
    window_seconds: int
    max_rows: int = DEFAULT_MAX_ROWS
    history_limit: int = 2016


@dataclass(frozen=True)
class VersionScore:
    """One version's scores on its labelled rows."""

    metrics: dict[str, float]
    used: int


def evaluate_live(
    request: LiveRequest,
    s3: S3Client,
    layout: Layout,
    *,
    clock: Callable[[], datetime] = _utcnow,
    encryption: Mapping[str, str] | None = None,
) -> PerformanceMeasured:
    """Measure every version with predictions in the window; raises TrainerError."""
    registry = Registry(s3, layout.bucket, layout.prefix)
    window = Window.ending(clock(), request.window_seconds)
    try:
        versions = registry.list_versions(request.model)
        if not versions:  # nothing was ever served, so nothing can have been logged
            nothing = Joined(window=window, rows=pd.DataFrame())
            return _measured(request, window, nothing, [], metric=request.metric)
        newest = registry.metadata(request.model, versions[-1])
        target = newest.target
        if not target:
            raise TrainerError(
                Reason.INVALID_SPEC,
                f"metadata.json of {request.model} v{versions[-1]} "
                "names no target: the labels' column is unknown",
            )
        joined = join(
            s3, layout, request.model, target=target, window=window, max_rows=request.max_rows
        )
        results = []
        for version in sorted(joined.counts, key=_number, reverse=True):
            counts = joined.counts[version]
            try:
                metadata = registry.metadata(request.model, version)
            except (VersionNotFound, InvalidReference):
                log.warning(
                    "predictions of %s v%s, which is not in the registry: skipped",
                    request.model,
                    version,
                )
                continue
            rows = joined.rows
            metric, score = score_version(
                rows[rows[VERSION] == version] if len(rows) else rows, metadata, request.metric
            )
            point = PerformancePoint(
                checked_at=window.end,
                window_seconds=window.seconds,
                metric=metric.value,
                value=score.metrics.get(metric.value),
                samples=counts.samples,
                labelled=counts.labelled,
                metrics=score.metrics,
            )
            append_point(
                s3,
                layout,
                request.model,
                version,
                point,
                limit=request.history_limit,
                encryption=encryption,
            )
            results.append((version, point, score.used))
        return _measured(request, window, joined, results, metric=_asked(request, newest))
    except RegistryError as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"model registry: {exc}") from exc


def score_version(
    rows: pd.DataFrame, metadata: ModelMetadata, asked: Metric | None
) -> tuple[Metric, VersionScore]:
    """The asked metric (checked against the version's task) and the scores on `rows`."""
    task = Task(metadata.task or Task.CLASSIFICATION)
    metric = asked or DEFAULT_METRICS[task][0]
    if METRIC_TASKS[metric] != task:
        raise TrainerError(
            Reason.INVALID_SPEC,
            f"monitoring.performance.metric {metric.value} does not apply to "
            f"{metadata.model} v{metadata.version}, a {task.value} model",
        )
    wanted = [metric, *(m for m in DEFAULT_METRICS[task] if m != metric)]
    if rows.empty:
        return metric, VersionScore({}, 0)
    if task == Task.REGRESSION:
        y_true = pd.to_numeric(rows[LABEL], errors="coerce").to_numpy(dtype=np.float64)
        predicted = pd.to_numeric(rows[PREDICTION], errors="coerce").to_numpy(dtype=np.float64)
        usable = np.isfinite(y_true) & np.isfinite(predicted)
        return metric, _score(wanted, y_true[usable], predicted[usable], None, None)
    classes = list(metadata.classes or [])
    proba = None
    if metric in PROBA_METRICS:
        columns = [f"proba_{label}" for label in classes]
        missing = [c for c in columns if c not in rows.columns]
        if not classes or missing:
            raise TrainerError(
                Reason.INVALID_SPEC,
                f"{metric.value} needs the predictions' probabilities, which the log of "
                f"{metadata.model} v{metadata.version} does not have",
            )
        proba = rows[columns].to_numpy(dtype=np.float64)
    y_true = class_text(rows[LABEL])
    predicted = class_text(rows[PREDICTION])
    return metric, _score(wanted, y_true, predicted, proba, class_text(classes))


def _score(
    wanted: list[Metric],
    y_true: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: np.ndarray | None,
) -> VersionScore:
    scores: dict[str, float] = {}
    if len(y_true):
        for metric in wanted:
            if metric in PROBA_METRICS and proba is None:
                continue
            try:
                scores.update(score_predictions([metric], y_true, predicted, proba, classes))
            except TrainerError as exc:  # e.g. one class labelled: no value, not a failure
                log.info("%s", exc.message)
    return VersionScore(scores, len(y_true))


def _measured(
    request: LiveRequest,
    window: Window,
    joined: Joined,
    results: list[tuple[str, PerformancePoint, int]],
    *,
    metric: Metric | None,
) -> PerformanceMeasured:
    return PerformanceMeasured(
        model=request.model,
        metric=None if metric is None else metric.value,
        checked_at=window.end,
        window_seconds=window.seconds,
        samples=joined.samples,
        labelled=joined.labelled,
        versions=[
            VersionPerformance(
                version=version,
                value=point.value,
                samples=point.samples,
                labelled=point.labelled,
                used=used if used < point.labelled else None,
            )
            for version, point, used in results[: PerformanceMeasured.MAX_VERSIONS]
        ],
        skipped_objects=joined.skipped,
    )


def _asked(request: LiveRequest, metadata: ModelMetadata) -> Metric:
    """The metric of the check: the asked one, else the task's first default."""
    return request.metric or DEFAULT_METRICS[Task(metadata.task or Task.CLASSIFICATION)][0]


def _number(version: str) -> int:
    return int(version) if version.isdigit() else -1
