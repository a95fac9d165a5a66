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
- drift: the ModelDeployment reports `status.drift.detected`, and `cooldownSeconds` have
  passed since `status.lastDriftTriggerTime`, so one drift episode starts one run.

Triggers that fire together start ONE run (reason by priority: Manual, Drift, NewData,
Schedule) and are all consumed. With a run active, `Forbid` consumes them and records a
skip, `Replace` replaces the run. While suspended nothing is consumed: like a CronJob's
missed schedules, pending triggers act once the loop is resumed.
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

__all__ = [
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
    drift_detected: bool | None = None
    drift_detail: str = ""


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
    cron = _cron(schedule, after, time_zone)
    try:
        slot: datetime = cron.get_next(datetime)
    except ValueError as error:  # parses, yet names no date that exists (`0 0 30 2 *`)
        raise InvalidTrigger("spec.triggers.schedule", f"{schedule!r} never fires") from error
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
    if drift is not None and drift_fired(
        seen.drift_detected, status.last_drift_trigger_time, drift.cooldown_seconds, now
    ):
        detail = seen.drift_detail or f"ModelDeployment {drift.deployment} reports drift"
        fired.append(Fired(TriggerReason.DRIFT, detail))
        updates["lastDriftTriggerTime"] = format_time(now)
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
        return Decision(Action.NONE)
    first = fired[0]
    also = [f.reason.value for f in fired[1:]]
    what = f"{first.reason.value} ({first.detail})" + (f"; also {', '.join(also)}" if also else "")
    if seen.active_run and spec.concurrency_policy == "Forbid":
        message = (
            f"skipped {what}: run {seen.active_run} is still active (concurrencyPolicy Forbid)"
        )
        return Decision(Action.SKIP, first.reason, message, tuple(fired), updates)
    updates["lastTriggered"] = {
        "time": format_time(now),
        "reason": first.reason.value,
        "detail": first.detail,
    }
    action = Action.REPLACE if seen.active_run else Action.START
    return Decision(action, first.reason, what, tuple(fired), updates)
