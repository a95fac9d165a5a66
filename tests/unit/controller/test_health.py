"""Reconciling, Stalled, Complete and Failed derived from each kind's phase and Ready (pure).

Judged two ways: the conditions themselves, and kstatus' verdict: from kstatus' own
status.Compute when the `kstatus` command is in the cache (the integration tier builds
it), else from its documented rules (kstatushelpers).
"""

from datetime import UTC, datetime
from typing import Any

import kstatushelpers
import pytest

from ctrain.api import (
    ConditionType,
    ContinuousTrainingStatus,
    ModelDeploymentStatus,
    Reason,
    TrainingJobStatus,
    VersionMetrics,
)
from ctrain.controller import health
from ctrain.controller.conditions import get_condition, set_condition
from ctrain.controller.runtime.status import serialise

pytestmark = pytest.mark.unit

AT = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)


def verdicts(objects: list[dict[str, Any]]) -> list[str]:
    return kstatushelpers.verdicts(objects, kstatushelpers.built())


def as_object(kind: str, status: Any, generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ml", "generation": generation},
        "status": serialise(status),
    }


def with_ready(model: Any, ready: bool, reason: str, **fields: Any) -> Any:
    status = model(observed_generation=1, **fields)
    status.conditions = set_condition([], ConditionType.READY, ready, reason, "m", 1, AT)
    return status


def state(status: Any, kind: ConditionType) -> tuple[str, str] | None:
    found = get_condition(status.conditions, kind)
    return (str(found.status), found.reason) if found else None


@pytest.mark.parametrize(
    ("phase", "ready", "reason", "expected", "terminal"),
    [
        ("Pending", False, Reason.JOB_CREATED, "InProgress", None),
        ("Running", False, Reason.JOB_RUNNING, "InProgress", None),
        ("Succeeded", True, Reason.PROMOTED, "Current", ConditionType.COMPLETE),
        ("Succeeded", True, Reason.NOT_PROMOTED, "Current", ConditionType.COMPLETE),
        ("Failed", False, Reason.DATA_VALIDATION_FAILED, "Failed", ConditionType.FAILED),
        ("Failed", False, Reason.DEADLINE_EXCEEDED, "Failed", ConditionType.FAILED),
    ],
)
def test_trainingjob(
    phase: str, ready: bool, reason: str, expected: str, terminal: ConditionType | None
) -> None:
    status = health.trainingjob(with_ready(TrainingJobStatus, ready, reason, phase=phase), AT)
    others = {ConditionType.COMPLETE, ConditionType.FAILED} - {terminal}
    assert all(state(status, other) is None for other in others)
    if terminal is not None:
        expected_reason = Reason.TRAINING_SUCCEEDED if phase == "Succeeded" else reason
        assert state(status, terminal) == ("True", expected_reason)
    reconciling, stalled = (
        state(status, ConditionType.RECONCILING),
        state(status, ConditionType.STALLED),
    )
    assert reconciling is not None and stalled is not None
    assert not (reconciling[0] == stalled[0] == "True")
    if phase == "Failed":
        assert stalled == ("True", reason)
    if phase in ("Pending", "Running"):
        assert reconciling == ("True", reason)
    assert verdicts([as_object("TrainingJob", status)]) == [expected]


def test_a_stale_generation_is_in_progress_whatever_the_conditions() -> None:
    status = health.trainingjob(
        with_ready(TrainingJobStatus, True, Reason.PROMOTED, phase="Succeeded"), AT
    )
    assert verdicts([as_object("TrainingJob", status, generation=2)]) == ["InProgress"]


def test_derived_conditions_keep_their_transition_time() -> None:
    first = health.trainingjob(
        with_ready(TrainingJobStatus, False, Reason.JOB_RUNNING, phase="Running"), AT
    )
    later = health.trainingjob(first, datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    assert later.conditions == first.conditions


@pytest.mark.parametrize(
    ("phase", "ready", "reason", "degraded", "expected"),
    [
        ("Pending", False, Reason.REPLICAS_UNAVAILABLE, None, "InProgress"),
        ("Progressing", False, Reason.REPLICAS_UNAVAILABLE, None, "InProgress"),
        ("Available", True, Reason.ROLLOUT_COMPLETE, None, "Current"),
        ("Degraded", True, Reason.ROLLOUT_COMPLETE, Reason.ROLLED_BACK, "Failed"),
        ("Pending", False, Reason.VERSION_NOT_FOUND, Reason.VERSION_NOT_FOUND, "Failed"),
        ("Degraded", False, Reason.INVALID_SPEC, None, "Failed"),
    ],
)
def test_modeldeployment(
    phase: str, ready: bool, reason: str, degraded: str | None, expected: str
) -> None:
    status = with_ready(ModelDeploymentStatus, ready, reason, phase=phase)
    if degraded:
        status.conditions = set_condition(
            status.conditions, ConditionType.DEGRADED, True, degraded, "d", 1, AT
        )
    status = health.modeldeployment(status, AT)
    if expected == "Failed":
        assert state(status, ConditionType.STALLED) == ("True", degraded or reason)
    assert verdicts([as_object("ModelDeployment", status)]) == [expected]


CHAMPION = VersionMetrics(version="3", metrics={"accuracy": 0.97})


@pytest.mark.parametrize(
    ("ready", "reason", "champion", "suspended", "active", "expected", "ready_after"),
    [
        (True, Reason.IDLE, None, False, None, "InProgress", ("False", Reason.NO_CHAMPION)),
        (True, Reason.RUN_ACTIVE, None, False, "r1", "InProgress", ("False", Reason.NO_CHAMPION)),
        (True, Reason.IDLE, CHAMPION, False, None, "Current", ("True", Reason.IDLE)),
        (True, Reason.RUN_ACTIVE, CHAMPION, False, "r2", "Current", ("True", Reason.RUN_ACTIVE)),
        (False, Reason.RUN_FAILED, CHAMPION, False, None, "Failed", ("False", Reason.RUN_FAILED)),
        (False, Reason.INVALID_SPEC, None, False, None, "Failed", ("False", Reason.INVALID_SPEC)),
        (True, Reason.SUSPENDED, None, True, None, "InProgress", ("False", Reason.SUSPENDED)),
        (True, Reason.SUSPENDED, CHAMPION, True, None, "Current", ("True", Reason.SUSPENDED)),
        (
            False,
            Reason.DEPLOYMENT_NOT_FOUND,
            None,
            False,
            None,
            "InProgress",
            ("False", Reason.DEPLOYMENT_NOT_FOUND),
        ),
    ],
)
def test_continuoustraining(
    ready: bool,
    reason: str,
    champion: VersionMetrics | None,
    suspended: bool,
    active: str | None,
    expected: str,
    ready_after: tuple[str, str],
) -> None:
    status = with_ready(
        ContinuousTrainingStatus, ready, reason, champion=champion, active_run=active
    )
    status = health.continuoustraining(status, suspended=suspended, at=AT)
    assert state(status, ConditionType.READY) == ready_after
    if champion is None and not suspended and ready_after[1] == Reason.NO_CHAMPION:
        assert state(status, ConditionType.RECONCILING) == ("True", Reason.NO_CHAMPION)
    assert verdicts([as_object("ContinuousTraining", status)]) == [expected]


def test_both_reconciling_and_stalled_is_refused() -> None:
    with pytest.raises(ValueError, match="both"):
        health.set_kstatus([], reconciling=("A", ""), stalled=("B", ""), generation=1, at=AT)
