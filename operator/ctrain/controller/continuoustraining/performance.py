"""The `onPerformance` trigger: degraded live performance starts one retraining run.

The named ModelDeployment's `status.performance` says whether the served version is
degraded and since when (`degradedSince`, kept while the checks stay degraded). The pair
`<version>@<degradedSince>` names one degradation episode: an episode starts at most one
run (`status.performanceEpisode` remembers the last one that did), and a new episode
waits for `cooldownSeconds` after the last performance-started run
(`status.lastPerformanceTriggerTime`). Unknown performance (too few labels, a failed
check) is no episode: missing evidence starts nothing.

The labelled production rows such a run trains on are new data to the other triggers
too: with `dataset.feedback` enabled the data's identity includes the labels'
(`ctrain.feedback.data_identity`).
"""

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from ctrain.api import OnPerformanceTrigger, Reason, TrainingJobSpec, TriggerReason
from ctrain.api.common import format_time
from ctrain.controller.config import OperatorConfig
from ctrain.controller.continuoustraining import builders as build
from ctrain.controller.storage.clients import location
from ctrain.controller.storage.facts import DatasetFact, Reading
from ctrain.feedback import data_identity, labels_root
from ctrain.registry import Layout

__all__ = [
    "Degradation",
    "degradation",
    "fired",
    "labels_fact",
    "wait_seconds",
    "with_labels",
]


@dataclasses.dataclass(frozen=True)
class Degradation:
    """One episode of degraded performance, as the ModelDeployment reports it."""

    episode: str  # <version>@<degradedSince>
    detail: str


def degradation(deployment: str, md_status: dict[str, Any]) -> Degradation | None:
    """The ModelDeployment's current episode, or None when it is not degraded."""
    performance = md_status.get("performance") or {}
    since = performance.get("degradedSince")
    if performance.get("degraded") is not True or not since:
        return None
    version = performance.get("version") or "?"
    metric, value = performance.get("metric"), performance.get("value")
    threshold = performance.get("threshold")
    figures = (
        f" ({metric} {value:.4f}, threshold {threshold:g})"
        if isinstance(value, int | float) and isinstance(threshold, int | float)
        else ""
    )
    detail = (
        f"ModelDeployment {deployment} reports degraded performance of version "
        f"{version}{figures} since {since}"
    )
    return Degradation(f"{version}@{since}", detail)


def fired(
    trigger: OnPerformanceTrigger,
    seen: Degradation | None,
    last_episode: str | None,
    last_trigger: datetime | None,
    now: datetime,
) -> tuple[TriggerReason, str, dict[str, Any]] | None:
    """(reason, detail, status updates) when a new episode may start a run, else None."""
    if seen is None or seen.episode == last_episode:
        return None
    if wait_seconds(trigger, last_trigger, now) > 0:
        return None
    updates = {"performanceEpisode": seen.episode, "lastPerformanceTriggerTime": format_time(now)}
    return TriggerReason.PERFORMANCE, seen.detail, updates


def wait_seconds(
    trigger: OnPerformanceTrigger, last_trigger: datetime | None, now: datetime
) -> float:
    """Seconds left of the cooldown after the last performance-started run (0: none)."""
    if last_trigger is None:
        return 0.0
    end = last_trigger + timedelta(seconds=trigger.cooldown_seconds)
    return max(0.0, (end - now).total_seconds())


def labels_fact(template: TrainingJobSpec, config: OperatorConfig) -> DatasetFact | None:
    """The model's labels/ prefix as a fact to follow, when runs train on production rows:
    a new or replaced label object is new training data."""
    feedback = template.dataset.feedback
    if feedback is None or not feedback.enabled:
        return None
    where = location(template.storage, config)
    root = labels_root(Layout(where.bucket, where.prefix), template.model)
    return DatasetFact(where.endpoint, f"s3://{where.bucket}/{root}")


def with_labels(dataset: str, labels: Reading | None, problems: list[build.Problem]) -> str | None:
    """The data's identity: the dataset's and the labels' (`data_identity`); None (not
    known yet, so no trigger) until the labels were read, or when reading them failed."""
    if labels is None:
        return None
    if labels.failure is not None:
        if labels.failure.reason == Reason.DATASET_NOT_FOUND:
            return data_identity(dataset, None)  # no label uploaded yet
        problems.append(build.Problem(labels.failure.reason, labels.failure.message))
        return None
    value = labels.value if isinstance(labels.value, str) else None
    return data_identity(dataset, None if value is None else f"labels:{value}")
