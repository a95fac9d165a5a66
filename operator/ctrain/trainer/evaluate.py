"""Evaluation: the task, the held-out split, the metrics and the quality gates.

Task detection. The task comes from the estimator's type, through the API's allowlist
(`ctrain.api.ESTIMATORS`: every allowed estimator is a classifier or a regressor). The
data is checked against it with one rule, `target_kind`: a target is *continuous* when
it is numeric (not bool) and has a non-integral value, or more than
`MAX_CLASSES_FOR_INTEGERS` distinct integer values; otherwise it is *discrete*.
A classifier needs a discrete target and a regressor a numeric one; a mismatch fails
data validation instead of producing a meaningless model.

The split of the rows into training and holdout is `ctrain.trainer.split` (by content
hash, so a row keeps its side as the data grows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from ctrain.api import Gate, Metric, Reason, Task
from ctrain.trainer.errors import TrainerError

__all__ = [
    "MAX_CLASSES_FOR_INTEGERS",
    "PROBA_METRICS",
    "compute_metrics",
    "evaluate_gates",
    "score_predictions",
    "target_kind",
    "target_values",
]

MAX_CLASSES_FOR_INTEGERS = 20
PROBA_METRICS: frozenset[Metric] = frozenset({Metric.ROC_AUC_OVR, Metric.LOG_LOSS})
DIGITS = 6  # metrics are reported and compared rounded to this many decimals


def target_kind(target: pd.Series) -> Literal["continuous", "discrete"]:
    """Classify a target column by the rule in the module docstring."""
    values = target.dropna()
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        return "discrete"
    numbers = values.astype("float64")
    if bool((numbers % 1 != 0).any()) or numbers.nunique() > MAX_CLASSES_FOR_INTEGERS:
        return "continuous"
    return "discrete"


def target_values(target: pd.Series, task: Task) -> np.ndarray:
    """The target as the estimator sees it: floats for regression, labels otherwise."""
    if task == Task.REGRESSION:
        return np.asarray(target, dtype=np.float64)
    return np.asarray(target.to_numpy())


def compute_metrics(
    model: Any, matrix: np.ndarray, y_true: np.ndarray, metrics: Sequence[Metric]
) -> dict[str, float]:
    """Score a fitted model on a matrix; every metric rounded to `DIGITS` decimals."""
    predicted = model.predict(matrix)
    proba = None
    if any(metric in PROBA_METRICS for metric in metrics):
        proba = model.predict_proba(matrix)
    classes = getattr(model, "classes_", None)
    return score_predictions(metrics, y_true, predicted, proba, classes)


def score_predictions(
    metrics: Sequence[Metric],
    y_true: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: np.ndarray | None,
) -> dict[str, float]:
    """Score predictions already made (a holdout's, or production's joined with labels);
    `proba` columns follow `classes`. Rounded to `DIGITS` decimals; TrainerError when a
    metric cannot be computed or is not finite."""
    scores = {}
    for metric in metrics:
        try:
            value = _score(metric, y_true, predicted, proba, classes)
        except ValueError as exc:
            raise TrainerError(
                Reason.TRAINING_FAILED, f"metric {metric.value} cannot be computed: {exc}"
            ) from exc
        if not math.isfinite(value):
            raise TrainerError(
                Reason.TRAINING_FAILED, f"metric {metric.value} is not finite ({value})"
            )
        scores[metric.value] = round(value, DIGITS)
    return scores


def _score(
    metric: Metric,
    y_true: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray | None,
    classes: np.ndarray | None,
) -> float:
    simple = {
        Metric.ACCURACY: skm.accuracy_score,
        Metric.BALANCED_ACCURACY: skm.balanced_accuracy_score,
        Metric.R2: skm.r2_score,
        Metric.MAE: skm.mean_absolute_error,
        Metric.MSE: skm.mean_squared_error,
        Metric.RMSE: skm.root_mean_squared_error,
        Metric.MAPE: skm.mean_absolute_percentage_error,
    }
    averaged = {
        Metric.F1_MACRO: (skm.f1_score, "macro"),
        Metric.F1_WEIGHTED: (skm.f1_score, "weighted"),
        Metric.PRECISION_MACRO: (skm.precision_score, "macro"),
        Metric.RECALL_MACRO: (skm.recall_score, "macro"),
    }
    if metric in simple:
        return float(simple[metric](y_true, predicted))
    if metric in averaged:
        function, average = averaged[metric]
        return float(function(y_true, predicted, average=average, zero_division=0))
    if proba is None or classes is None:
        raise ValueError("the model has no predict_proba")
    if metric == Metric.LOG_LOSS:
        return float(skm.log_loss(y_true, proba, labels=classes))
    if len(classes) == 2:
        return float(skm.roc_auc_score(y_true == classes[1], proba[:, 1]))
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))


def evaluate_gates(scores: Mapping[str, float], gates: Sequence[Gate]) -> list[dict[str, Any]]:
    """Each gate with the value it saw and whether it passed (the status's GateResult)."""
    results = []
    for gate in gates:
        value = scores[gate.metric.value]
        passed = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
        result: dict[str, Any] = {"metric": gate.metric.value}
        if gate.min is not None:
            result["min"] = gate.min
        if gate.max is not None:
            result["max"] = gate.max
        result.update(value=value, passed=passed)
        results.append(result)
    return results
