"""The onPerformance trigger: one run per degradation episode, a cooldown between runs,
nothing on missing evidence; pure functions of the ModelDeployment's status and a clock."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ctrain.api import ContinuousTrainingSpec, ContinuousTrainingStatus, TriggerReason
from ctrain.api.common import format_time
from ctrain.controller.continuoustraining.performance import degradation
from ctrain.controller.continuoustraining.triggers import Action, Observations, decide

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
SINCE = "2026-03-01T09:55:00Z"


def _spec(cooldown: int = 600, **triggers: Any) -> ContinuousTrainingSpec:
    return ContinuousTrainingSpec.parse(
        {
            "template": {
                "spec": {
                    "model": "iris",
                    "dataset": {"uri": "builtin://iris"},
                    "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
                }
            },
            "triggers": {
                "onPerformance": {"deployment": "serving", "cooldownSeconds": cooldown},
                **triggers,
            },
        }
    )


def _md_status(degraded: bool | None, since: str | None = SINCE, version: str = "2") -> Any:
    performance: dict[str, Any] = {
        "version": version,
        "metric": "accuracy",
        "value": 0.61,
        "threshold": 0.8,
    }
    if degraded is not None:
        performance["degraded"] = degraded
    if since is not None:
        performance["degradedSince"] = since
    return {"performance": performance}


def _seen(md_status: Any) -> Observations:
    return Observations(degradation=degradation("serving", md_status))


def test_a_degraded_deployment_starts_one_run_per_episode() -> None:
    first = decide(_spec(), ContinuousTrainingStatus(), _seen(_md_status(True)), T0)
    assert (first.action, first.reason) == (Action.START, TriggerReason.PERFORMANCE)
    assert "accuracy 0.6100, threshold 0.8" in first.message
    assert first.updates["performanceEpisode"] == f"2@{SINCE}"

    after = ContinuousTrainingStatus.parse(
        {k: v for k, v in first.updates.items() if k != "lastTriggered"}
    )
    # Still the same episode, long after the cooldown: no second run.
    later = decide(_spec(), after, _seen(_md_status(True)), T0 + timedelta(days=1))
    assert later.action == Action.NONE


def test_a_new_episode_waits_for_the_cooldown() -> None:
    status = ContinuousTrainingStatus.parse(
        {"performanceEpisode": f"1@{SINCE}", "lastPerformanceTriggerTime": format_time(T0)}
    )
    seen = _seen(_md_status(True, since="2026-03-01T10:05:00Z"))
    assert decide(_spec(cooldown=600), status, seen, T0 + timedelta(seconds=599)).action == (
        Action.NONE
    )
    started = decide(_spec(cooldown=600), status, seen, T0 + timedelta(seconds=600))
    assert started.action == Action.START


@pytest.mark.parametrize(
    "md_status",
    [
        _md_status(None, since=None),  # too few labels: Unknown, not judged
        _md_status(False, since=None),
        {},  # no check has answered yet
        {"performance": {"degraded": True}},  # no episode start: not evidence enough
    ],
)
def test_missing_evidence_or_good_performance_starts_nothing(md_status: Any) -> None:
    decision = decide(_spec(), ContinuousTrainingStatus(), _seen(md_status), T0)
    assert decision.action == Action.NONE


def test_with_a_run_active_forbid_consumes_the_episode() -> None:
    seen = Observations(active_run="loop-1", degradation=degradation("serving", _md_status(True)))
    decision = decide(_spec(), ContinuousTrainingStatus(), seen, T0)
    assert decision.action == Action.SKIP
    assert decision.updates["performanceEpisode"] == f"2@{SINCE}"


def test_with_feedback_new_labels_are_new_data() -> None:
    from ctrain.controller.config import OperatorConfig
    from ctrain.controller.continuoustraining.performance import labels_fact, with_labels
    from ctrain.controller.storage.facts import Failure, Reading

    template = _spec().template.spec
    assert labels_fact(template, OperatorConfig()) is None  # no feedback: labels do not count
    spec = ContinuousTrainingSpec.parse(
        {
            "template": {
                "spec": {
                    "model": "iris",
                    "dataset": {"uri": "builtin://iris", "feedback": {"enabled": True}},
                    "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
                }
            }
        }
    )
    fact = labels_fact(spec.template.spec, OperatorConfig(default_bucket="models"))
    assert fact is not None and fact.uri == "s3://models/ctrain/iris/labels/"

    problems: list[Any] = []
    none_yet = Reading(failure=Failure("DatasetNotFound", "no objects"))
    assert with_labels("builtin://iris", none_yet, problems) == "builtin://iris"
    first = with_labels("builtin://iris", Reading("sha256:aa"), problems)
    second = with_labels("builtin://iris", Reading("sha256:bb"), problems)
    assert first != second and first is not None and first.startswith("builtin://iris+")
    assert with_labels("builtin://iris", None, problems) is None  # not read yet: no trigger
    denied = Reading(failure=Failure("DatasetUnreadable", "denied"))
    assert with_labels("builtin://iris", denied, problems) is None
    assert [p.reason for p in problems] == ["DatasetUnreadable"]
