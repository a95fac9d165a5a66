"""Is the challenger really better? Paired statistics of two models scored on the same rows.

Both models predict the same rows, so their scores are paired, and a difference in the key
metric can be told from noise. This module reports, for the key metric:

- ``delta``: the challenger's improvement in the metric's better direction;
- a 95% confidence interval of ``delta`` from a paired bootstrap (`scipy.stats.bootstrap`,
  percentile method, `RESAMPLES` resamples, seeded): each resample draws rows with
  replacement and scores *both* models on the same drawn rows;
- a two-sided p-value from the paired test that suits the metric:

  ========================================  =================================================
  accuracy                                  McNemar's test on the rows exactly one model
                                            gets right (statsmodels; exact binomial when
                                            fewer than 25 such rows, else chi-square with
                                            continuity correction)
  mae, mse, rmse, r2, mape, log_loss        paired t-test (`scipy.stats.ttest_rel`) on the
                                            per-row losses the metric averages (absolute,
                                            squared, absolute percentage error, log loss;
                                            rmse and r2 are monotone in the mean squared
                                            error on the same rows)
  f1, precision, recall, balanced accuracy, paired bootstrap: twice the share of resampled
  roc_auc_ovr (not averages of rows)        deltas on the far side of 0 (+1 smoothed), i.e.
                                            the smallest alpha whose percentile interval
                                            excludes 0
  ========================================  =================================================

  ``evaluation.significance.test`` picks the test instead (McNemar needs accuracy).

The bootstrap scores each resample with vectorised forms of the metrics (means of per-row
values, or confusion-matrix counts); a unit test holds each of them equal to scikit-learn's
on the same rows (roc_auc_ovr from row counts over its sorted scores, see `_auc_scorer`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from ctrain.api import Metric, higher_is_better

__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "PairedResult",
    "Predictions",
    "Test",
    "default_test",
    "mcnemar_p_value",
    "paired_comparison",
]

RESAMPLES = 1000
CONFIDENCE = 0.95
# Bounds the memory of one batch of resamples: about this many row indices at a time.
_BATCH_CELLS = 4_000_000
_EXACT_BELOW = 25  # discordant pairs below which McNemar's exact binomial test is used

Test = Literal["McNemar", "PairedBootstrap", "PairedTTest"]

_MEAN_LOSSES = frozenset(
    {Metric.MAE, Metric.MSE, Metric.RMSE, Metric.R2, Metric.MAPE, Metric.LOG_LOSS}
)


@dataclass(frozen=True)
class Predictions:
    """What one model said about the compared rows."""

    predicted: np.ndarray
    proba: np.ndarray | None = None
    classes: np.ndarray | None = None


@dataclass(frozen=True)
class PairedResult:
    """The paired comparison of the key metric (see the module docstring)."""

    delta: float
    interval: tuple[float, float] | None
    p_value: float | None
    test: Test


def default_test(metric: Metric) -> Test:
    """The paired test that suits ``metric`` (the table in the module docstring)."""
    if metric == Metric.ACCURACY:
        return "McNemar"
    if metric in _MEAN_LOSSES:
        return "PairedTTest"
    return "PairedBootstrap"


def paired_comparison(
    metric: Metric,
    y_true: np.ndarray,
    challenger: Predictions,
    champion: Predictions,
    *,
    seed: int,
    test: Test | None = None,
) -> PairedResult:
    """Delta, its bootstrap interval and a p-value; raises ValueError if unscorable."""
    rows = len(y_true)
    if rows == 0:
        raise ValueError("no rows to compare on")
    ours = _scorer(metric, y_true, challenger)
    theirs = _scorer(metric, y_true, champion)
    sign = 1.0 if higher_is_better(metric.value) else -1.0

    def delta_of(index: np.ndarray, axis: int = -1) -> np.ndarray:
        del axis  # the index is always resampled along its last axis
        return np.asarray(sign * (ours(index) - theirs(index)))

    every_row = np.arange(rows)
    delta = float(delta_of(every_row))
    if not math.isfinite(delta):
        raise ValueError(f"{metric.value} cannot be computed on these rows")
    result = stats.bootstrap(
        (every_row,),
        delta_of,
        n_resamples=RESAMPLES,
        batch=max(1, _BATCH_CELLS // rows),
        vectorized=True,
        confidence_level=CONFIDENCE,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = result.confidence_interval
    interval = (float(low), float(high)) if math.isfinite(low) and math.isfinite(high) else None

    chosen = test or default_test(metric)
    if chosen == "McNemar":
        if metric != Metric.ACCURACY:
            raise ValueError(f"McNemar's test compares accuracy, not {metric.value}")
        p_value: float | None = mcnemar_p_value(
            challenger.predicted == y_true, champion.predicted == y_true
        )
    elif chosen == "PairedTTest":
        p_value = _paired_t_p_value(_row_losses(metric, y_true, champion),
                                    _row_losses(metric, y_true, challenger))  # fmt: skip
    else:
        p_value = _bootstrap_p_value(np.asarray(result.bootstrap_distribution))
    return PairedResult(delta=delta, interval=interval, p_value=p_value, test=chosen)


def mcnemar_p_value(challenger_right: np.ndarray, champion_right: np.ndarray) -> float:
    """Two-sided p-value of McNemar's test on paired right/wrong outcomes."""
    from statsmodels.stats.contingency_tables import mcnemar  # deferred: a heavy import

    ours, theirs = np.asarray(challenger_right, bool), np.asarray(champion_right, bool)
    only_ours = int(np.sum(ours & ~theirs))
    only_theirs = int(np.sum(~ours & theirs))
    table = [[int(np.sum(ours & theirs)), only_ours], [only_theirs, int(np.sum(~ours & ~theirs))]]
    exact = only_ours + only_theirs < _EXACT_BELOW
    return float(mcnemar(table, exact=exact, correction=True).pvalue)


def _paired_t_p_value(champion_losses: np.ndarray, challenger_losses: np.ndarray) -> float | None:
    differences = champion_losses - challenger_losses
    if len(differences) < 2:
        return None
    if np.all(differences == differences[0]):
        # No spread: identical losses are no evidence; a constant gap is certain.
        return 1.0 if differences[0] == 0 else 0.0
    p_value = float(stats.ttest_rel(champion_losses, challenger_losses).pvalue)
    return p_value if math.isfinite(p_value) else None


def _bootstrap_p_value(distribution: np.ndarray) -> float | None:
    finite = distribution[np.isfinite(distribution)]
    if finite.size == 0:
        return None
    below = int(np.sum(finite <= 0))
    above = int(np.sum(finite >= 0))
    smaller = min(below, above)
    return min(1.0, 2.0 * (smaller + 1) / (int(finite.size) + 1))


# --- vectorised metrics: one value per row of an index matrix -----------------------------

Scorer = Callable[[np.ndarray], np.ndarray]


def _row_losses(metric: Metric, y_true: np.ndarray, model: Predictions) -> np.ndarray:
    """The per-row values a mean-based metric averages (lower is better)."""
    if metric == Metric.LOG_LOSS:
        return _log_losses(y_true, model)
    errors = np.asarray(model.predicted, np.float64) - np.asarray(y_true, np.float64)
    if metric == Metric.MAE:
        return np.abs(errors)
    if metric in (Metric.MSE, Metric.RMSE, Metric.R2):
        return errors**2
    if metric == Metric.MAPE:
        floor = np.finfo(np.float64).eps  # scikit-learn's guard against y == 0
        return np.abs(errors) / np.maximum(np.abs(np.asarray(y_true, np.float64)), floor)
    raise ValueError(f"{metric.value} is not a mean of per-row losses")


def _log_losses(y_true: np.ndarray, model: Predictions) -> np.ndarray:
    if model.proba is None or model.classes is None:
        raise ValueError("log_loss needs predict_proba")
    position = {label: index for index, label in enumerate(model.classes.tolist())}
    try:
        columns = np.array([position[label] for label in np.asarray(y_true).tolist()])
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not one of the model's classes") from exc
    proba = np.asarray(model.proba, np.float64)
    eps = np.finfo(proba.dtype).eps
    chosen = np.clip(proba[np.arange(len(columns)), columns], eps, 1 - eps)
    return np.asarray(-np.log(chosen))


def _scorer(metric: Metric, y_true: np.ndarray, model: Predictions) -> Scorer:
    if metric == Metric.ACCURACY:
        right = (np.asarray(model.predicted) == np.asarray(y_true)).astype(np.float64)
        return lambda index: np.asarray(right[index].mean(axis=-1))
    if metric in (Metric.MAE, Metric.MSE, Metric.MAPE, Metric.LOG_LOSS):
        losses = _row_losses(metric, y_true, model)
        return lambda index: np.asarray(losses[index].mean(axis=-1))
    if metric == Metric.RMSE:
        squared = _row_losses(metric, y_true, model)
        return lambda index: np.asarray(np.sqrt(squared[index].mean(axis=-1)))
    if metric == Metric.R2:
        return _r2_scorer(np.asarray(y_true, np.float64), _row_losses(metric, y_true, model))
    if metric == Metric.ROC_AUC_OVR:
        return _auc_scorer(y_true, model)
    return _confusion_scorer(metric, y_true, model.predicted)


def _r2_scorer(y: np.ndarray, squared: np.ndarray) -> Scorer:
    def score(index: np.ndarray) -> np.ndarray:
        drawn = y[index]
        residual = squared[index].sum(axis=-1)
        total = ((drawn - drawn.mean(axis=-1, keepdims=True)) ** 2).sum(axis=-1)
        # scikit-learn's force_finite: a constant target scores 1 if fitted exactly, else 0.
        with np.errstate(divide="ignore", invalid="ignore"):
            value = 1.0 - residual / total
        constant = total == 0
        return np.asarray(np.where(constant, np.where(residual == 0, 1.0, 0.0), value))

    return score


def _confusion_scorer(metric: Metric, y_true: np.ndarray, predicted: np.ndarray) -> Scorer:
    codes, labels = pd.factorize(
        pd.Series(np.concatenate([np.asarray(y_true, object), np.asarray(predicted, object)]))
    )
    count = len(labels)
    truth, guess = codes[: len(y_true)], codes[len(y_true) :]
    cell = truth * count + guess

    def score(index: np.ndarray) -> np.ndarray:
        drawn = np.atleast_2d(cell[index])
        batch = drawn.shape[0]
        offsets = (np.arange(batch) * count * count)[:, None]
        matrix = np.bincount((drawn + offsets).ravel(), minlength=batch * count * count)
        value = _from_confusion(metric, matrix.reshape(batch, count, count).astype(np.float64))
        return value if index.ndim > 1 else np.asarray(value[0])

    return score


def _from_confusion(metric: Metric, matrix: np.ndarray) -> np.ndarray:
    """scikit-learn's averaged metrics (zero_division=0) from (batch, true, predicted) counts."""
    hits = np.diagonal(matrix, axis1=1, axis2=2)
    support = matrix.sum(axis=2)  # rows: true class
    guessed = matrix.sum(axis=1)  # columns: predicted class
    present = (support + guessed) > 0  # scikit-learn averages over the labels seen

    def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        safe = np.where(denominator > 0, denominator, 1.0)
        return np.asarray(np.where(denominator > 0, numerator / safe, 0.0))

    def macro(per_class: np.ndarray, among: np.ndarray) -> np.ndarray:
        return np.asarray((per_class * among).sum(axis=1) / np.maximum(among.sum(axis=1), 1))

    if metric == Metric.BALANCED_ACCURACY:
        return macro(ratio(hits, support), support > 0)
    if metric == Metric.PRECISION_MACRO:
        return macro(ratio(hits, guessed), present)
    if metric == Metric.RECALL_MACRO:
        return macro(ratio(hits, support), present)
    f1 = ratio(2 * hits, support + guessed)
    if metric == Metric.F1_MACRO:
        return macro(f1, present)
    if metric == Metric.F1_WEIGHTED:
        return np.asarray((f1 * support).sum(axis=1) / np.maximum(support.sum(axis=1), 1))
    raise ValueError(f"no paired form of {metric.value}")


def _auc_scorer(y_true: np.ndarray, model: Predictions) -> Scorer:
    """scikit-learn's roc_auc_score (binary, or one-vs-rest macro) for resampled rows.

    A resample is a multiset of rows; AUC is the share of (positive, negative) pairs it
    orders correctly, ties counting half. Each class's scores are ranked once into tie
    groups; a resample then needs only its count of positives and negatives per group.
    """
    if model.proba is None or model.classes is None:
        raise ValueError("roc_auc_ovr needs predict_proba")
    truth, proba, classes = np.asarray(y_true), np.asarray(model.proba), model.classes
    if len(classes) == 2:
        tasks = [(truth == classes[1], proba[:, 1])]
    else:
        tasks = [(truth == label, proba[:, column]) for column, label in enumerate(classes)]
    prepared = []
    for positive, scores in tasks:
        groups, group_of_row = np.unique(scores, return_inverse=True)  # ascending tie groups
        cell_of_row = group_of_row * 2 + positive.astype(np.int64)
        prepared.append((cell_of_row, 2 * len(groups)))

    def score(index: np.ndarray) -> np.ndarray:
        drawn = np.atleast_2d(index)
        batch = drawn.shape[0]
        per_task = []
        for cell_of_row, cells in prepared:
            offsets = (np.arange(batch) * cells)[:, None]
            counts = np.bincount((cell_of_row[drawn] + offsets).ravel(), minlength=batch * cells)
            counts = counts.reshape(batch, cells // 2, 2).astype(np.float64)
            negatives, positives = counts[..., 0], counts[..., 1]
            below = np.cumsum(negatives, axis=1) - negatives
            pairs = positives.sum(axis=1) * negatives.sum(axis=1)
            right = (positives * (below + 0.5 * negatives)).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                per_task.append(np.where(pairs > 0, right / pairs, np.nan))
        value = np.asarray(np.mean(per_task, axis=0))  # NaN if a class is missing, as in sklearn
        return value if index.ndim > 1 else np.asarray(value[0])

    return score
