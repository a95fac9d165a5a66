"""Task rule, metrics and gates (the split: test_trainer_split; the verdict: test_trainer_judge)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression, Ridge

from ctrain.api import Gate, Metric
from ctrain.trainer.data import builtin_frame
from ctrain.trainer.evaluate import compute_metrics, evaluate_gates, target_kind

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
