"""When a ContinuousTraining starts a run: the pure trigger logic, with the clock passed in.

Every trigger is level-based and remembers in status what it already acted on, so a
reconcile repeated after a crash or a restart decides the same thing:

- manual: the annotation `ctrain.dev/trigger` differs from `status.observedTrigger`;
- schedule: a cron slot (UTC, or `timeZone`) passed since `status.lastScheduleTime` (or
  since the object was created). Slots missed while the operator was down collapse into
  one catch-up run, as a CronJob without `startingDeadlineSeconds` does;
- new data: the dataset's fingerprint (ETag, or the objects under an `s3://.../` prefix)
  differs from `status.dataVersion`; the storage watch reads it every
  `pollIntervalSeconds`. The first fingerprint ever seen counts as new: the loop has not
  trained on that data yet;
- drift: the ModelDeployment reports `status.drift.detected` and no run was started for
  this episode yet (`status.driftEpisode` names the served version whose episode did),
  and `cooldownSeconds` have passed since `status.lastDriftTriggerTime`. The episode ends
  when drift is no longer detected or the served version changes: one episode, one run.

Triggers that fire together start ONE run (reason by priority: Manual, Drift, NewData,
Schedule) and are all consumed. Every run records the dataset fingerprint it starts on
(`status.dataVersion`): schedule and drift triggers on a fingerprint already trained are
skipped with reason NoNewData (`lastTriggered.skipped`) unless `allowSameData` is set;
manual and new-data runs always run. With a run active, `Replace` replaces the run;
`Forbid` skips schedule and drift triggers but queues a manual run or new data
(`status.pendingRun`, and new data stays unconsumed), which start one run as soon as the
active run ends, on the newest data. While suspended nothing is consumed: like a
CronJob's missed schedules, pending triggers act once the loop is resumed.
"""

import dataclasses
import zoneinfo
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from croniter import croniter

from ctrain.api import ContinuousTrainingSpec, ContinuousTrainingStatus, TriggerReason
from ctrain.api.common import format_time

TRIGGER_ANNOTATION = "ctrain.dev/trigger"
NO_NEW_DATA = "NoNewData"
# Triggers that only say "time to train", not "there is something new to train on".
SAME_DATA_SKIPPABLE = frozenset({TriggerReason.SCHEDULE, TriggerReason.DRIFT})
QUEUED_WHEN_FORBIDDEN = frozenset({TriggerReason.MANUAL, TriggerReason.NEW_DATA})

__all__ = [
    "NO_NEW_DATA",
    "TRIGGER_ANNOTATION",
    "Action",
    "Decision",
    "Fired",
    "InvalidTrigger",
    "Observations",
    "decide",
    "drift_fired",
    "latest_slot",
    "manual_fired",
    "next_slot",
]


class InvalidTrigger(ValueError):
    """A trigger the schema could not reject (a cron string, a time zone); names the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Action(StrEnum):
    """What the loop does about the triggers that fired."""

    NONE = "None"
    START = "Start"  # create a run
    SKIP = "Skip"  # a run is active and concurrencyPolicy is Forbid
    QUEUE = "Queue"  # ... and the trigger waits for it to end (new data, a manual run)
    NO_NEW_DATA = "NoNewData"  # the data was trained on already
    REPLACE = "Replace"  # a run is active and concurrencyPolicy is Replace


@dataclasses.dataclass(frozen=True)
class Fired:
    """One trigger that fired, with what the Event and `lastTriggered.detail` say about it."""

    reason: TriggerReason
    detail: str


@dataclasses.dataclass(frozen=True)
class Observations:
    """What the reconciler read from the world for one decision."""

    created: datetime | None = None  # the ContinuousTraining's creationTimestamp
    trigger_annotation: str | None = None
    active_run: str | None = None  # an unfinished TrainingJob of this loop
    data_fingerprint: str | None = None  # None: not polled this time
    data_unread: bool = False  # the fingerprint is followed but was not read yet
    drift_detected: bool | None = None
    drift_detail: str = ""
    drift_version: str | None = None  # the version the drifting ModelDeployment serves


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome of `decide`: an action, why, and the status fields that record it."""

    action: Action
    reason: TriggerReason | None = None
    message: str = ""
    fired: tuple[Fired, ...] = ()
    updates: dict[str, Any] = dataclasses.field(default_factory=dict)  # camelCase wire values


def _zone(time_zone: str | None) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidTrigger(
            "spec.triggers.timeZone", f"{time_zone!r} is not an IANA time zone"
        ) from error


def _cron(schedule: str, start: datetime, time_zone: str | None) -> croniter:
    if not (schedule.startswith("@") or len(schedule.split()) == 5):
        raise InvalidTrigger(
            "spec.triggers.schedule", f"{schedule!r} is not a cron schedule (5 fields or @daily)"
        )
    local_start = start.astimezone(_zone(time_zone))
    try:
        return croniter(schedule, local_start)
    except (ValueError, KeyError) as error:  # croniter's errors are ValueErrors
        raise InvalidTrigger(
            "spec.triggers.schedule", f"{schedule!r} is not a cron schedule: {error}"
        ) from error


def next_slot(schedule: str, time_zone: str | None, after: datetime) -> datetime:
    """The first scheduled time strictly after `after`, in UTC."""
    slot: datetime = _cron(schedule, after, time_zone).get_next(datetime)
    return slot.astimezone(UTC)


def latest_slot(
    schedule: str, time_zone: str | None, since: datetime, now: datetime
) -> datetime | None:
    """The latest scheduled time in (since, now], or None: missed slots collapse into one."""
    if next_slot(schedule, time_zone, since) > now:
        return None
    # get_prev is strict; cron has minute granularity, so one second later includes `now`.
    slot: datetime = _cron(schedule, now + timedelta(seconds=1), time_zone).get_prev(datetime)
    return slot.astimezone(UTC)


def manual_fired(annotation: str | None, observed: str | None) -> bool:
    """A new value of `ctrain.dev/trigger` (removing the annotation starts nothing)."""
    return bool(annotation) and annotation != observed


def drift_fired(
    detected: bool | None, last_trigger: datetime | None, cooldown_seconds: int, now: datetime
) -> bool:
    """Drift is reported and the cooldown since the last drift-started run has passed."""
    if not detected:
        return False
    return last_trigger is None or now - last_trigger >= timedelta(seconds=cooldown_seconds)


def _fired(
    spec: ContinuousTrainingSpec,
    status: ContinuousTrainingStatus,
    seen: Observations,
    now: datetime,
) -> tuple[list[Fired], dict[str, Any]]:
    """Every trigger that fires now, by priority, and the status fields that consume them."""
    triggers = spec.triggers
    fired: list[Fired] = []
    updates: dict[str, Any] = {}
    if manual_fired(seen.trigger_annotation, status.observed_trigger):
        fired.append(Fired(TriggerReason.MANUAL, f"{TRIGGER_ANNOTATION}={seen.trigger_annotation}"))
        updates["observedTrigger"] = seen.trigger_annotation
    drift = triggers.on_drift
    episode = seen.drift_version or "unknown"
    if seen.drift_detected is False and status.drift_episode is not None:
        updates["driftEpisode"] = None  # the episode is over: the next one may start a run
    if (
        drift is not None
        and status.drift_episode != episode
        and drift_fired(
            seen.drift_detected, status.last_drift_trigger_time, drift.cooldown_seconds, now
        )
    ):
        detail = seen.drift_detail or f"ModelDeployment {drift.deployment} reports drift"
        fired.append(Fired(TriggerReason.DRIFT, detail))
        updates["lastDriftTriggerTime"] = format_time(now)
        updates["driftEpisode"] = episode
    if (
        triggers.on_new_data is not None
        and seen.data_fingerprint is not None
        and seen.data_fingerprint != status.data_version
    ):
        before = status.data_version
        detail = (
            f"dataset changed from {before} to {seen.data_fingerprint}"
            if before
            else f"dataset {seen.data_fingerprint} not trained on yet"
        )
        fired.append(Fired(TriggerReason.NEW_DATA, detail))
        updates["dataVersion"] = seen.data_fingerprint
    if triggers.schedule:
        since = status.last_schedule_time or seen.created or now
        slot = latest_slot(triggers.schedule, triggers.time_zone, since, now)
        if slot is not None:
            zone = f" ({triggers.time_zone})" if triggers.time_zone else ""
            detail = f"schedule {triggers.schedule!r}{zone} at {format_time(slot)}"
            fired.append(Fired(TriggerReason.SCHEDULE, detail))
            updates["lastScheduleTime"] = format_time(slot)
    pending = None if seen.active_run else status.pending_run  # queued behind a run
    reasons = {f.reason for f in fired}
    if pending is not None and pending.reason is not None and pending.reason not in reasons:
        queued = Fired(pending.reason, f"{pending.detail} (queued behind a run)")
        fired.insert(0 if pending.reason == TriggerReason.MANUAL else len(fired), queued)
    return fired, updates


def decide(
    spec: ContinuousTrainingSpec,
    status: ContinuousTrainingStatus,
    seen: Observations,
    now: datetime,
) -> Decision:
    """Start a run, skip it, replace the active one, or do nothing; raises InvalidTrigger."""
    if spec.triggers.schedule:
        next_slot(spec.triggers.schedule, spec.triggers.time_zone, now)  # validate even if idle
    if spec.suspend:
        return Decision(Action.NONE, message="suspended: triggers wait until resumed")
    fired, updates = _fired(spec, status, seen, now)
    if not fired:
        return Decision(Action.NONE, updates=updates)
    first = fired[0]
    also = [f.reason.value for f in fired[1:]]
    what = f"{first.reason.value} ({first.detail})" + (f"; also {', '.join(also)}" if also else "")
    data = seen.data_fingerprint
    if all(f.reason in SAME_DATA_SKIPPABLE for f in fired) and not spec.triggers.allow_same_data:
        if seen.data_unread:
            # Undecided until the fingerprint is read; the storage watch enqueues the loop then.
            return Decision(Action.NONE, message="waiting for the dataset's fingerprint")
        if data is not None and data == status.data_version:
            updates["lastTriggered"] = {
                "time": format_time(now),
                "reason": first.reason.value,
                "detail": first.detail,
                "skipped": NO_NEW_DATA,
            }
            message = f"skipped {what}: dataset {data} was trained on already ({NO_NEW_DATA})"
            return Decision(Action.NO_NEW_DATA, first.reason, message, tuple(fired), updates)
    if seen.active_run and spec.concurrency_policy == "Forbid":
        return _forbid(status, seen, fired, updates, what, now)
    updates["lastTriggered"] = {
        "time": format_time(now),
        "reason": first.reason.value,
        "detail": first.detail,
    }
    if data is not None:
        updates["dataVersion"] = data  # what this run trains on: never trained again
    if status.pending_run is not None:
        updates["pendingRun"] = None
    action = Action.REPLACE if seen.active_run else Action.START
    return Decision(action, first.reason, what, tuple(fired), updates)


def _forbid(
    status: ContinuousTrainingStatus,
    seen: Observations,
    fired: list[Fired],
    updates: dict[str, Any],
    what: str,
    now: datetime,
) -> Decision:
    """A run is active under Forbid: queue new data and manual runs, skip the rest."""
    first = fired[0]
    # New data is not consumed: it fires again, with the newest fingerprint, once the
    # active run has ended.
    updates.pop("dataVersion", None)
    queued = [f for f in fired if f.reason in QUEUED_WHEN_FORBIDDEN]
    if (
        queued
        and status.pending_run is not None
        and all(f.reason == TriggerReason.NEW_DATA for f in fired)
    ):
        return Decision(Action.NONE, updates=updates)  # already queued: said once
    if not queued:
        message = (
            f"skipped {what}: run {seen.active_run} is still active (concurrencyPolicy Forbid)"
        )
        return Decision(Action.SKIP, first.reason, message, tuple(fired), updates)
    keep = status.pending_run
    if keep is None or keep.reason != TriggerReason.MANUAL:
        updates["pendingRun"] = {
            "time": format_time(now),
            "reason": queued[0].reason.value,
            "detail": queued[0].detail,
        }
    message = (
        f"queued {what}: a run starts when run {seen.active_run} ends (concurrencyPolicy Forbid)"
    )
    return Decision(Action.QUEUE, queued[0].reason, message, tuple(fired), updates)
