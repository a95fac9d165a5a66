"""The ContinuousTraining trigger logic: pure functions of the spec, the status and a clock."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ctrain.api import ContinuousTrainingSpec, ContinuousTrainingStatus, TriggerReason
from ctrain.api.common import format_time
from ctrain.controller.continuoustraining.triggers import (
    Action,
    InvalidTrigger,
    Observations,
    decide,
    drift_fired,
    latest_slot,
    manual_fired,
    next_slot,
)

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
TEMPLATE_SPEC = {
    "model": "iris",
    "dataset": {"uri": "builtin://iris"},
    "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def spec(triggers: dict[str, Any] | None = None, **extra: Any) -> ContinuousTrainingSpec:
    return ContinuousTrainingSpec.parse(
        {
            "template": {"spec": TEMPLATE_SPEC},
            "triggers": triggers or {},
            **extra,
        }
    )


def status(**fields: Any) -> ContinuousTrainingStatus:
    return ContinuousTrainingStatus.parse(fields)


# --- schedules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "zone", "since", "now", "slot"),
    [
        ("* * * * *", None, "2026-03-01T10:00:30", "2026-03-01T10:00:59", None),
        ("* * * * *", None, "2026-03-01T10:00:30", "2026-03-01T10:01:00", "2026-03-01T10:01:00"),
        ("* * * * *", None, "2026-03-01T10:01:00", "2026-03-01T10:01:59", None),
        # missed slots collapse into one catch-up: the latest
        ("* * * * *", None, "2026-03-01T10:00:30", "2026-03-01T10:05:30", "2026-03-01T10:05:00"),
        ("0 3 * * *", None, "2026-03-01T03:00:00", "2026-03-05T12:00:00", "2026-03-05T03:00:00"),
        ("0 3 * * *", None, "2026-03-01T03:00:00", "2026-03-02T02:59:59", None),
        ("@hourly", None, "2026-03-01T10:00:30", "2026-03-01T11:00:00", "2026-03-01T11:00:00"),
        # 03:00 in Berlin is 02:00 UTC in winter (CET) and 01:00 UTC in summer (CEST)
        (
            "0 3 * * *",
            "Europe/Berlin",
            "2026-03-01T00:00:00",
            "2026-03-01T02:00:00",
            "2026-03-01T02:00:00",
        ),
        ("0 3 * * *", "Europe/Berlin", "2026-03-01T00:00:00", "2026-03-01T01:59:00", None),
        (
            "0 3 * * *",
            "Europe/Berlin",
            "2026-07-01T00:00:00",
            "2026-07-01T01:00:00",
            "2026-07-01T01:00:00",
        ),
        (
            "0 9 * * 1-5",
            "America/New_York",
            "2026-03-06T15:00:00",  # a Friday, after 09:00 EST
            "2026-03-09T13:00:00",  # Monday 09:00 EDT (DST began on Sunday)
            "2026-03-09T13:00:00",
        ),
    ],
)
def test_latest_slot(
    schedule: str, zone: str | None, since: str, now: str, slot: str | None
) -> None:
    expected = at(slot) if slot else None
    assert latest_slot(schedule, zone, at(since), at(now)) == expected


def test_next_slot_is_strictly_after_and_in_utc() -> None:
    assert next_slot("* * * * *", None, at("2026-03-01T10:01:00")) == at("2026-03-01T10:02:00")
    slot = next_slot("30 8 * * *", "Asia/Tokyo", at("2026-03-01T00:00:00"))
    assert slot == at("2026-03-01T23:30:00") and slot.tzinfo == UTC


@pytest.mark.parametrize(
    ("schedule", "zone", "field"),
    [
        ("61 * * * *", None, "spec.triggers.schedule"),
        ("* * * * * *", None, "spec.triggers.schedule"),
        ("every day", None, "spec.triggers.schedule"),
        ("@fortnightly", None, "spec.triggers.schedule"),
        ("* * * * *", "Mars/Olympus_Mons", "spec.triggers.timeZone"),
        ("* * * * *", "../etc/passwd", "spec.triggers.timeZone"),
    ],
)
def test_invalid_schedules_name_the_field(schedule: str, zone: str | None, field: str) -> None:
    with pytest.raises(InvalidTrigger) as raised:
        next_slot(schedule, zone, T0)
    assert raised.value.field == field
    assert str(raised.value).startswith(field + ": ")


# --- the single triggers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "observed", "fired"),
    [
        (None, None, False),
        ("", None, False),
        ("1", None, True),
        ("1", "1", False),
        ("2", "1", True),
        (None, "1", False),  # removing the annotation starts nothing
    ],
)
def test_manual_fired(annotation: str | None, observed: str | None, fired: bool) -> None:
    assert manual_fired(annotation, observed) is fired


@pytest.mark.parametrize(
    ("detected", "last", "cooldown", "fired"),
    [
        (None, None, 60, False),
        (False, None, 60, False),
        (True, None, 60, True),
        (True, T0 - timedelta(seconds=59), 60, False),
        (True, T0 - timedelta(seconds=60), 60, True),
        (True, T0, 0, True),
    ],
)
def test_drift_fired(
    detected: bool | None, last: datetime | None, cooldown: int, fired: bool
) -> None:
    assert drift_fired(detected, last, cooldown, T0) is fired


# --- decide ------------------------------------------------------------------------------

DATA = {"onNewData": {"pollIntervalSeconds": 60}}
DRIFT = {"onDrift": {"deployment": "iris-serving", "cooldownSeconds": 600}}
EVERY_MINUTE = {"schedule": "* * * * *"}
CREATED = at("2026-03-01T10:00:10")


@pytest.mark.parametrize(
    ("triggers", "old", "seen", "action", "reason", "updates"),
    [
        pytest.param({}, {}, {}, Action.NONE, None, {}, id="no-triggers"),
        pytest.param(
            {},
            {},
            {"trigger_annotation": "1"},
            Action.START,
            TriggerReason.MANUAL,
            {"observedTrigger": "1"},
            id="manual-first",
        ),
        pytest.param(
            {},
            {"observedTrigger": "1"},
            {"trigger_annotation": "1"},
            Action.NONE,
            None,
            {},
            id="manual-same",
        ),
        pytest.param(
            {},
            {"observedTrigger": "1"},
            {"trigger_annotation": "2"},
            Action.START,
            TriggerReason.MANUAL,
            {"observedTrigger": "2"},
            id="manual-new-value",
        ),
        pytest.param(
            EVERY_MINUTE,
            {},
            {"created": at("2026-03-01T09:59:50")},
            Action.START,
            TriggerReason.SCHEDULE,
            {"lastScheduleTime": "2026-03-01T10:00:00Z"},
            id="schedule-first-slot-after-creation",
        ),
        pytest.param(
            EVERY_MINUTE,
            {},
            {"created": at("2026-03-01T10:00:40")},
            Action.NONE,
            None,
            {},
            id="schedule-not-yet",
        ),
        pytest.param(
            EVERY_MINUTE,
            {"lastScheduleTime": "2026-03-01T10:00:00Z"},
            {},
            Action.NONE,
            None,
            {},
            id="schedule-slot-consumed",
        ),
        pytest.param(
            EVERY_MINUTE,
            {"lastScheduleTime": "2026-03-01T08:00:00Z"},
            {},
            Action.START,
            TriggerReason.SCHEDULE,
            {"lastScheduleTime": "2026-03-01T10:00:00Z"},
            id="schedule-missed-many-one-catch-up",
        ),
        pytest.param(
            DATA,
            {},
            {"data_fingerprint": "etag:a"},
            Action.START,
            TriggerReason.NEW_DATA,
            {"dataVersion": "etag:a"},
            id="data-first-seen",
        ),
        pytest.param(
            DATA,
            {"dataVersion": "etag:a"},
            {"data_fingerprint": "etag:a"},
            Action.NONE,
            None,
            {},
            id="data-unchanged",
        ),
        pytest.param(
            DATA,
            {"dataVersion": "etag:a"},
            {"data_fingerprint": "etag:b"},
            Action.START,
            TriggerReason.NEW_DATA,
            {"dataVersion": "etag:b"},
            id="data-changed",
        ),
        pytest.param(
            DATA,
            {"dataVersion": "etag:a"},
            {},
            Action.NONE,
            None,
            {},
            id="data-not-polled",
        ),
        pytest.param(
            {},
            {},
            {"data_fingerprint": "etag:b"},
            Action.NONE,
            None,
            {},
            id="data-without-onNewData",
        ),
        pytest.param(
            DRIFT,
            {},
            {"drift_detected": True},
            Action.START,
            TriggerReason.DRIFT,
            {"lastDriftTriggerTime": format_time(T0), "driftEpisode": "unknown"},
            id="drift",
        ),
        pytest.param(
            DRIFT,
            {"lastDriftTriggerTime": "2026-03-01T09:55:00Z"},
            {"drift_detected": True},
            Action.NONE,
            None,
            {},
            id="drift-in-cooldown",
        ),
        pytest.param(
            DRIFT,
            {"lastDriftTriggerTime": "2026-03-01T09:50:00Z"},
            {"drift_detected": True},
            Action.START,
            TriggerReason.DRIFT,
            {"lastDriftTriggerTime": format_time(T0), "driftEpisode": "unknown"},
            id="drift-after-cooldown",
        ),
        pytest.param(
            DRIFT,
            {},
            {"drift_detected": False},
            Action.NONE,
            None,
            {},
            id="no-drift",
        ),
        pytest.param(
            {},
            {},
            {"drift_detected": True},
            Action.NONE,
            None,
            {},
            id="drift-without-onDrift",
        ),
    ],
)
def test_decide_one_trigger(
    triggers: dict[str, Any],
    old: dict[str, Any],
    seen: dict[str, Any],
    action: Action,
    reason: TriggerReason | None,
    updates: dict[str, Any],
) -> None:
    decision = decide(spec(triggers), status(**old), Observations(**seen), T0)
    assert (decision.action, decision.reason) == (action, reason)
    expected = dict(updates)
    if action == Action.START:
        expected["lastTriggered"] = {
            "time": format_time(T0),
            "reason": reason,
            "detail": decision.fired[0].detail,
        }
    assert decision.updates == expected


def test_triggers_firing_together_start_one_run_and_are_all_consumed() -> None:
    triggers = {**EVERY_MINUTE, **DATA, **DRIFT}
    seen = Observations(
        created=at("2026-03-01T09:59:50"),
        trigger_annotation="7",
        data_fingerprint="etag:x",
        drift_detected=True,
    )
    decision = decide(spec(triggers), status(), seen, T0)
    assert decision.action == Action.START
    assert [f.reason for f in decision.fired] == [
        TriggerReason.MANUAL,
        TriggerReason.DRIFT,
        TriggerReason.NEW_DATA,
        TriggerReason.SCHEDULE,
    ]
    assert decision.reason == TriggerReason.MANUAL
    assert decision.message == "Manual (ctrain.dev/trigger=7); also Drift, NewData, Schedule"
    assert set(decision.updates) == {
        "observedTrigger",
        "lastDriftTriggerTime",
        "driftEpisode",
        "dataVersion",
        "lastScheduleTime",
        "lastTriggered",
    }
    again = decide(spec(triggers), status(**decision.updates), seen, T0 + timedelta(seconds=5))
    assert again.action == Action.NONE


@pytest.mark.parametrize(
    ("policy", "action"), [("Forbid", Action.SKIP), ("Replace", Action.REPLACE)]
)
def test_an_active_run_is_skipped_or_replaced(policy: str, action: Action) -> None:
    seen = Observations(created=at("2026-03-01T09:59:50"), active_run="loop-20260301-100000")
    decision = decide(spec(EVERY_MINUTE, concurrencyPolicy=policy), status(), seen, T0)
    assert decision.action == action
    assert decision.reason == TriggerReason.SCHEDULE
    assert decision.updates["lastScheduleTime"] == "2026-03-01T10:00:00Z"  # consumed either way
    if action == Action.SKIP:
        assert "lastTriggered" not in decision.updates
        assert "loop-20260301-100000" in decision.message and "Forbid" in decision.message
    else:
        assert decision.updates["lastTriggered"]["reason"] == TriggerReason.SCHEDULE


def test_suspended_consumes_nothing_and_resuming_runs_once() -> None:
    triggers = {**EVERY_MINUTE, **DATA}
    seen = Observations(created=CREATED, trigger_annotation="1", data_fingerprint="etag:a")
    held = decide(spec(triggers, suspend=True), status(), seen, T0 + timedelta(minutes=30))
    assert held.action == Action.NONE and held.updates == {}
    resumed = decide(spec(triggers), status(), seen, T0 + timedelta(minutes=30))
    assert resumed.action == Action.START
    assert resumed.updates["lastScheduleTime"] == "2026-03-01T10:30:00Z"


@pytest.mark.parametrize(
    ("triggers", "field"),
    [
        ({"schedule": "61 * * * *"}, "spec.triggers.schedule"),
        ({"schedule": "* * * * *", "time_zone": "Nowhere/City"}, "spec.triggers.timeZone"),
    ],
)
def test_decide_rejects_what_the_schema_missed(triggers: dict[str, Any], field: str) -> None:
    loop = spec()
    # model_construct: a spec that skipped validation (the CRD schema cannot run croniter)
    broken = loop.model_copy(update={"triggers": type(loop.triggers).model_construct(**triggers)})
    with pytest.raises(InvalidTrigger) as raised:
        decide(broken, status(), Observations(), T0)
    assert raised.value.field == field


def _simulate(
    triggers: dict[str, Any],
    observe: Any,
    minutes: int,
    *,
    step_seconds: int = 5,
    run_seconds: int = 0,
    policy: str = "Forbid",
) -> list[tuple[datetime, Action, TriggerReason | None]]:
    """Run `decide` every few seconds, applying its updates as the reconciler does."""
    loop = spec(triggers, concurrencyPolicy=policy)
    current: dict[str, Any] = {}
    active_until: datetime | None = None
    outcomes: list[tuple[datetime, Action, TriggerReason | None]] = []
    now = CREATED
    while now < CREATED + timedelta(minutes=minutes):
        active = "run" if active_until is not None and now < active_until else None
        seen = Observations(created=CREATED, active_run=active, **observe(now))
        decision = decide(loop, status(**current), seen, now)
        current.update(decision.updates)
        if decision.action != Action.NONE:
            outcomes.append((now, decision.action, decision.reason))
        if decision.action in (Action.START, Action.REPLACE):
            active_until = now + timedelta(seconds=run_seconds)
        now += timedelta(seconds=step_seconds)
    return outcomes


def test_a_schedule_starts_one_run_per_slot() -> None:
    outcomes = _simulate({"schedule": "*/2 * * * *"}, lambda now: {}, minutes=10)
    assert [o[0].strftime("%H:%M") for o in outcomes] == [
        "10:02",
        "10:04",
        "10:06",
        "10:08",
        "10:10",
    ]
    assert {o[1] for o in outcomes} == {Action.START}


def test_the_same_data_never_trains_twice() -> None:
    def observe(now: datetime) -> dict[str, Any]:  # the object changes once, at 10:03
        return {"data_fingerprint": "etag:new" if now >= at("2026-03-01T10:03:00") else "etag:old"}

    outcomes = _simulate(DATA, observe, minutes=10)
    assert [(o[0].strftime("%H:%M:%S"), o[2]) for o in outcomes] == [
        ("10:00:10", TriggerReason.NEW_DATA),
        ("10:03:00", TriggerReason.NEW_DATA),
    ]


def test_one_drift_episode_starts_one_run() -> None:
    # The demo's loop: drift never goes away and no run is promoted. One run, not one per
    # cooldown.
    outcomes = _simulate(DRIFT, lambda now: {"drift_detected": True}, minutes=25)
    assert [o[0].strftime("%H:%M:%S") for o in outcomes] == ["10:00:10"]


def test_a_drift_episode_ends_when_drift_goes_away_or_the_served_version_changes() -> None:
    def observe(now: datetime) -> dict[str, Any]:
        minute = (now - CREATED).total_seconds() // 60
        detected = not 12 <= minute < 13  # drift goes away for a minute at 10:12
        version = "1" if minute < 30 else "2"  # a new version is served from 10:30
        return {"drift_detected": detected, "drift_version": version,
                "data_fingerprint": f"etag:{minute}"}  # fmt: skip

    outcomes = _simulate(DRIFT, observe, minutes=45)
    assert [o[0].strftime("%H:%M:%S") for o in outcomes] == ["10:00:10", "10:13:10", "10:30:10"]


def test_schedule_and_drift_on_data_trained_already_are_skipped_with_no_new_data() -> None:
    triggers = {**EVERY_MINUTE, **DRIFT}
    seen = Observations(created=CREATED, data_fingerprint="etag:a", drift_detected=True)
    first = decide(spec(triggers), status(), seen, T0 + timedelta(minutes=2))
    assert first.action == Action.START
    assert first.updates["dataVersion"] == "etag:a"  # what the run trains on
    later = T0 + timedelta(minutes=5)
    again = decide(spec(triggers), status(**first.updates), seen, later)
    assert again.action == Action.NO_NEW_DATA
    assert again.reason == TriggerReason.SCHEDULE  # drift's episode already ran
    assert again.updates["lastTriggered"]["skipped"] == "NoNewData"
    assert "etag:a" in again.message and "NoNewData" in again.message
    assert "lastScheduleTime" in again.updates  # consumed: said once per slot
    allowed = decide(
        spec({**triggers, "allowSameData": True}), status(**first.updates), seen, later
    )
    assert allowed.action == Action.START
    manual = Observations(created=CREATED, data_fingerprint="etag:a", trigger_annotation="x")
    by_hand = decide(spec(triggers), status(**first.updates), manual, later)
    assert by_hand.action == Action.START and by_hand.reason == TriggerReason.MANUAL


def test_a_schedule_waits_for_the_fingerprint_before_deciding() -> None:
    seen = Observations(created=CREATED, data_unread=True)
    waiting = decide(spec(EVERY_MINUTE), status(), seen, T0 + timedelta(minutes=2))
    assert (waiting.action, waiting.updates) == (Action.NONE, {})


def test_forbid_queues_new_data_seen_during_a_run_and_runs_it_once_after() -> None:
    def observe(now: datetime) -> dict[str, Any]:  # changes at 10:01 and 10:02, mid-run
        minute = int((now - CREATED).total_seconds() // 60)
        return {"data_fingerprint": f"etag:{min(minute, 2)}"}

    outcomes = _simulate(DATA, observe, minutes=8, run_seconds=240)
    assert [(o[0].strftime("%H:%M:%S"), o[1], o[2]) for o in outcomes] == [
        ("10:00:10", Action.START, TriggerReason.NEW_DATA),
        ("10:01:10", Action.QUEUE, TriggerReason.NEW_DATA),  # said once, not every pass
        ("10:04:10", Action.START, TriggerReason.NEW_DATA),  # the newest data, once
    ]


def test_forbid_queues_a_manual_run_behind_the_active_one() -> None:
    active = Observations(trigger_annotation="2", active_run="loop-1")
    queued = decide(spec(), status(observedTrigger="1"), active, T0)
    assert queued.action == Action.QUEUE
    assert queued.updates["pendingRun"]["reason"] == TriggerReason.MANUAL
    after = status(**queued.updates)
    idle = Observations(trigger_annotation="2")
    started = decide(spec(), after, idle, T0 + timedelta(minutes=1))
    assert (started.action, started.reason) == (Action.START, TriggerReason.MANUAL)
    assert "queued behind a run" in started.message
    assert started.updates["pendingRun"] is None


def test_forbid_skips_slots_while_a_long_run_is_active() -> None:
    outcomes = _simulate(EVERY_MINUTE, lambda now: {}, minutes=5, run_seconds=150)
    assert [(o[0].strftime("%H:%M"), o[1]) for o in outcomes] == [
        ("10:01", Action.START),
        ("10:02", Action.SKIP),
        ("10:03", Action.SKIP),
        ("10:04", Action.START),
        ("10:05", Action.SKIP),
    ]
