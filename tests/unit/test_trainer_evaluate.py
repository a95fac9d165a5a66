"""Task rule, holdout split, metrics, gates and the blessing/promotion verdict."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from ctrain.api import Gate, Metric, Reason, Task
from ctrain.trainer.compare import Baseline, judge
from ctrain.trainer.data import builtin_frame
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.evaluate import compute_metrics, evaluate_gates, split_holdout, target_kind

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (["a", "b", "a"], "discrete"),
        ([True, False, True], "discrete"),
        ([0, 1, 1, 0], "discrete"),
        ([0.0, 1.0, 2.0], "discrete"),  # integral floats: class codes read from a CSV
        ([0.5, 1.0, 2.0], "continuous"),
        (list(range(21)), "continuous"),  # more than 20 distinct integers
        (list(range(20)), "discrete"),
    ],
)
def test_target_kind_rule(values: list[Any], kind: str) -> None:
    assert target_kind(pd.Series(values)) == kind


def test_split_is_seeded_and_stratified() -> None:
    frame = builtin_frame("iris")
    first = split_holdout(frame, target="target", task=Task.CLASSIFICATION, test_size=0.2, seed=3)
    again = split_holdout(frame, target="target", task=Task.CLASSIFICATION, test_size=0.2, seed=3)
    other = split_holdout(frame, target="target", task=Task.CLASSIFICATION, test_size=0.2, seed=4)
    assert first.stratified is True
    assert list(first.test.index) == list(again.test.index)
    assert list(first.test.index) != list(other.test.index)
    assert (len(first.train), len(first.test)) == (120, 30)
    assert first.test["target"].value_counts().to_dict() == {
        "setosa": 10,
        "versicolor": 10,
        "virginica": 10,
    }
    assert set(first.train.index).isdisjoint(first.test.index)


def test_split_falls_back_when_a_class_is_too_small() -> None:
    frame = pd.DataFrame({"x": range(10), "y": ["a"] * 5 + ["b"] * 4 + ["c"]})
    holdout = split_holdout(frame, target="y", task=Task.CLASSIFICATION, test_size=0.3, seed=0)
    assert holdout.stratified is False
    assert len(holdout.test) == 3


def test_split_needs_rows() -> None:
    frame = pd.DataFrame({"x": [1.0], "y": [1.0]})
    with pytest.raises(TrainerError) as caught:
        split_holdout(frame, target="y", task=Task.REGRESSION, test_size=0.2, seed=0)
    assert caught.value.reason == Reason.DATA_VALIDATION_FAILED


def test_classification_metrics_match_scikit_learn() -> None:
    frame = builtin_frame("iris")
    x, y = frame.drop(columns="target").to_numpy(), frame["target"].to_numpy()
    model = LogisticRegression(max_iter=50, C=0.05).fit(x[::2], y[::2])
    scores = compute_metrics(model, x[1::2], y[1::2], list(Metric)[:8])
    predicted = model.predict(x[1::2])
    assert scores["accuracy"] == round(float(np.mean(predicted == y[1::2])), 6)
    assert set(scores) == {m.value for m in list(Metric)[:8]}
    assert 0 < scores["log_loss"] < 2
    assert 0.5 < scores["roc_auc_ovr"] <= 1


def test_regression_metrics_and_binary_auc() -> None:
    frame = builtin_frame("diabetes")
    x, y = frame.drop(columns="target").to_numpy(), frame["target"].to_numpy()
    model = Ridge().fit(x[:300], y[:300])
    scores = compute_metrics(model, x[300:], y[300:], [Metric.R2, Metric.RMSE, Metric.MSE])
    assert scores["rmse"] == pytest.approx(scores["mse"] ** 0.5, abs=1e-5)

    labels = np.where(y > 140, "high", "low")
    classifier = LogisticRegression().fit(x[:300], labels[:300])
    auc = compute_metrics(classifier, x[300:], labels[300:], [Metric.ROC_AUC_OVR])
    assert 0.5 < auc["roc_auc_ovr"] <= 1


def test_gates() -> None:
    gates = [
        Gate(metric=Metric.ACCURACY, min=0.9),
        Gate(metric=Metric.LOG_LOSS, max=0.5),
        Gate(metric=Metric.F1_MACRO, min=0.5, max=0.99),
    ]
    results = evaluate_gates({"accuracy": 0.95, "log_loss": 0.7, "f1_macro": 0.995}, gates)
    assert results == [
        {"metric": "accuracy", "min": 0.9, "value": 0.95, "passed": True},
        {"metric": "log_loss", "max": 0.5, "value": 0.7, "passed": False},
        {"metric": "f1_macro", "min": 0.5, "max": 0.99, "value": 0.995, "passed": False},
    ]


def _judge(
    value: float,
    champion: float | None,
    metric: Metric = Metric.ACCURACY,
    *,
    min_improvement: float = 0.0,
    gates: list[dict[str, Any]] | None = None,
    promote: bool = True,
) -> tuple[bool, bool, str]:
    baseline = None if champion is None else Baseline("2", {metric.value: champion})
    verdict = judge(
        {metric.value: value},
        gates or [],
        baseline,
        key_metric=metric,
        min_improvement=min_improvement,
        promote=promote,
    )
    return verdict.blessed, verdict.promote, verdict.decision


def test_judge_higher_is_better() -> None:
    assert _judge(0.97, 0.93) == (
        True,
        True,
        "promoted: accuracy 0.9700 beats champion v2 0.9300",
    )
    blessed, promote, decision = _judge(0.90, 0.93)
    assert (blessed, promote) == (False, False)
    assert decision == "kept champion v2: accuracy 0.9000 does not beat 0.9300 (minImprovement 0.0)"


def test_judge_lower_is_better() -> None:
    assert _judge(40.0, 50.0, Metric.RMSE)[:2] == (True, True)
    assert _judge(60.0, 50.0, Metric.RMSE)[:2] == (False, False)
    assert _judge(0.2, 0.3, Metric.LOG_LOSS)[:2] == (True, True)
    assert _judge(0.2, 0.3, Metric.MAPE)[:2] == (True, True)


def test_judge_ties_and_min_improvement() -> None:
    assert _judge(0.93, 0.93)[:2] == (False, False)  # a tie keeps the champion
    assert _judge(0.95, 0.93, min_improvement=0.05)[:2] == (False, False)
    assert _judge(0.98, 0.93, min_improvement=0.05)[:2] == (True, True)  # exactly enough
    assert _judge(45.0, 50.0, Metric.MAE, min_improvement=5.0)[:2] == (True, True)
    assert _judge(46.0, 50.0, Metric.MAE, min_improvement=5.0)[:2] == (False, False)


def test_judge_gates_and_flags() -> None:
    failed = [{"metric": "accuracy", "min": 0.99, "value": 0.97, "passed": False}]
    assert _judge(0.97, None, gates=failed) == (
        False,
        False,
        "not blessed: gate accuracy >= 0.99 failed (0.9700)",
    )
    assert _judge(0.97, None) == (True, True, "promoted: no champion to beat (accuracy 0.9700)")
    blessed, promote, decision = _judge(0.97, 0.5, promote=False)
    assert (blessed, promote) == (True, False)
    assert decision.startswith("blessed, not promoted (promote is false)")


def test_judge_not_comparable_champion_falls_back_to_gates() -> None:
    baseline = Baseline("4", comparable=False, note="classes differ")
    verdict = judge(
        {"accuracy": 0.5},
        [],
        baseline,
        key_metric=Metric.ACCURACY,
        min_improvement=0.0,
        promote=True,
    )
    assert (verdict.blessed, verdict.promote) == (True, True)
    assert "champion v4 not comparable (classes differ)" in verdict.decision
    assert baseline.to_result().to_wire() == {
        "version": "4",
        "metrics": {},
        "comparable": False,
        "note": "classes differ",
    }
