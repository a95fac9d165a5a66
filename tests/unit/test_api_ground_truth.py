"""The ground-truth fields of the API: prediction log, live performance, feedback runs and
the onPerformance trigger; defaults, bounds and the rules between fields."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from ctrain.api import (
    ContinuousTrainingSpec,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    TrainingJobSpec,
)

pytestmark = pytest.mark.unit

IRIS = {"model": "iris", "dataset": {"uri": "builtin://iris"},
        "estimator": {"type": "sklearn.linear_model.LogisticRegression"}}  # fmt: skip


def _md(monitoring: dict[str, Any]) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.parse({"model": "iris", "monitoring": monitoring})


def test_monitoring_defaults() -> None:
    spec = _md({"predictionLog": {"enabled": True},
                "performance": {"enabled": True, "threshold": 0.9}})  # fmt: skip
    log, performance = spec.monitoring.prediction_log, spec.monitoring.performance
    assert log is not None and performance is not None
    assert (log.sample_rate, log.flush_seconds, log.exclude_columns) == (1.0, 30, [])
    assert (performance.metric, performance.min_samples) == (None, 100)
    assert (performance.window_seconds, performance.interval_seconds) == (86400, 300)
    assert spec.monitoring.performance_enabled and spec.monitoring.prediction_log_enabled
    assert not _md({}).monitoring.performance_enabled


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"performance": {"enabled": True, "threshold": 0.9}}, "needs predictionLog"),
        ({"predictionLog": {"enabled": False}, "performance": {"enabled": True, "threshold": 1}},
         "needs predictionLog"),
        ({"predictionLog": {"enabled": True}, "performance": {"enabled": True}},
         "threshold is required"),
        ({"predictionLog": {"sampleRate": 1.5}}, "less than or equal to 1"),
        ({"predictionLog": {"flushSeconds": 4}}, "greater than or equal to 5"),
        ({"predictionLog": {"excludeColumns": [""]}}, "at least 1 character"),
        ({"predictionLog": {"enabled": True},
          "performance": {"enabled": True, "threshold": 1, "intervalSeconds": 29}},
         "greater than or equal to 30"),
        ({"predictionLog": {"enabled": True},
          "performance": {"enabled": True, "threshold": 1, "metric": "accuracyy"}},
         "Input should be"),
    ],
)  # fmt: skip
def test_monitoring_rules(monitoring: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        _md(monitoring)


def test_disabled_performance_needs_no_threshold_nor_log() -> None:
    assert _md({"performance": {"enabled": False}}).monitoring.performance is not None


def test_feedback_defaults_and_bounds() -> None:
    spec = TrainingJobSpec.parse({**IRIS, "dataset": {"uri": "builtin://iris",
                                                      "feedback": {"enabled": True}}})  # fmt: skip
    feedback = spec.dataset.feedback
    assert feedback is not None and spec.dataset.feedback_enabled
    assert (feedback.window_seconds, feedback.mode, feedback.max_rows) == (604800, "Append", 100000)
    assert not TrainingJobSpec.parse(IRIS).dataset.feedback_enabled
    for bad in ({"mode": "Merge"}, {"maxRows": 0}, {"windowSeconds": 59}):
        with pytest.raises(pydantic.ValidationError):
            TrainingJobSpec.parse({**IRIS, "dataset": {"uri": "builtin://iris", "feedback": bad}})


def test_on_performance_trigger() -> None:
    spec = ContinuousTrainingSpec.parse(
        {"template": {"spec": IRIS}, "triggers": {"onPerformance": {"deployment": "iris"}}}
    )
    trigger = spec.triggers.on_performance
    assert trigger is not None and (trigger.deployment, trigger.cooldown_seconds) == ("iris", 3600)
    with pytest.raises(pydantic.ValidationError):
        ContinuousTrainingSpec.parse(
            {"template": {"spec": IRIS}, "triggers": {"onPerformance": {"deployment": "Bad_Name"}}}
        )


def test_performance_status_wire() -> None:
    status = ModelDeploymentStatus.parse(
        {"performance": {"version": "3", "metric": "accuracy", "value": 0.71, "samples": 400,
                         "labelled": 380, "windowSeconds": 3600,
                         "checkedAt": "2026-11-22T10:00:00Z", "degraded": True,
                         "degradedSince": "2026-11-22T09:55:00Z", "threshold": 0.9}}
    )  # fmt: skip
    wire = status.to_wire()["performance"]
    assert wire["checkedAt"] == "2026-11-22T10:00:00Z"
    assert (wire["degraded"], wire["labelled"], wire["degradedSince"]) == (
        True, 380, "2026-11-22T09:55:00Z",
    )  # fmt: skip
