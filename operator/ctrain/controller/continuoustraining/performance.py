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

from ctrain.api import OnPerformanceTrigger, TriggerReason
from ctrain.api.common import format_time

__all__ = ["Degradation", "degradation", "fired", "wait_seconds"]


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
