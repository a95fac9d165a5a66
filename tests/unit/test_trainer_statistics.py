"""Paired statistics of champion and challenger, against textbook and scipy reference values."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from ctrain.api import Metric
from ctrain.trainer.statistics import (
    RESAMPLES,
    Predictions,
    _scorer,
    default_test,
    mcnemar_p_value,
    paired_comparison,
)

pytestmark = pytest.mark.unit


def _outcomes(both: int, only_first: int, only_second: int, neither: int) -> tuple[Any, Any]:
    first = [True] * both + [True] * only_first + [False] * only_second + [False] * neither
    second = [True] * both + [False] * only_first + [True] * only_second + [False] * neither
    return np.array(first), np.array(second)


def test_mcnemar_textbook_table_chi_square_with_continuity_correction() -> None:
    # Agresti, Categorical Data Analysis: approval of the Prime Minister in two surveys,
    # 794 / 150 / 86 / 570. Corrected statistic (|150 - 86| - 1)^2 / 236 = 16.82.
    first, second = _outcomes(794, 150, 86, 570)
    expected = stats.chi2.sf((abs(150 - 86) - 1) ** 2 / (150 + 86), df=1)
    assert mcnemar_p_value(first, second) == pytest.approx(expected, rel=1e-12)
    assert mcnemar_p_value(first, second) == pytest.approx(4.1146e-05, rel=1e-4)


def test_mcnemar_few_discordant_pairs_is_the_exact_binomial_test() -> None:
    first, second = _outcomes(40, 1, 9, 5)  # 10 discordant pairs: 2 * P(X <= 1), X~B(10, .5)
    assert mcnemar_p_value(first, second) == pytest.approx(0.021484375, abs=1e-12)
    assert mcnemar_p_value(first, second) == pytest.approx(
        stats.binomtest(1, 10, 0.5).pvalue, abs=1e-12
    )
    same = np.array([True, False, True])
    assert mcnemar_p_value(same, same) == 1.0  # no discordant pair: no evidence


def test_default_tests_per_metric() -> None:
    assert default_test(Metric.ACCURACY) == "McNemar"
    for metric in (Metric.RMSE, Metric.MAE, Metric.R2, Metric.MSE, Metric.LOG_LOSS):
        assert default_test(metric) == "PairedTTest"
    for metric in (Metric.F1_MACRO, Metric.ROC_AUC_OVR, Metric.BALANCED_ACCURACY):
        assert default_test(metric) == "PairedBootstrap"


def _labels(rng: np.random.Generator, rows: int = 400) -> dict[str, Any]:
    classes = np.array(["a", "b", "c"])
    truth = rng.choice(classes, size=rows)
    # A fourth label only predicted, never true: averaged metrics must still match.
    guess = np.where(rng.random(rows) < 0.7, truth, rng.choice(["a", "b", "c", "d"], rows))
    raw = np.round(rng.dirichlet([1, 1, 1], size=rows), 1) + 0.05  # ties in the scores
    proba = raw / raw.sum(axis=1, keepdims=True)
    return {"y": truth, "model": Predictions(guess, proba, classes)}


CLASSIFICATION: list[tuple[Metric, Callable[[Any, Predictions], float]]] = [
    (Metric.ACCURACY, lambda y, m: skm.accuracy_score(y, m.predicted)),
    (Metric.BALANCED_ACCURACY, lambda y, m: skm.balanced_accuracy_score(y, m.predicted)),
    (Metric.F1_MACRO, lambda y, m: skm.f1_score(y, m.predicted, average="macro", zero_division=0)),
    (
        Metric.F1_WEIGHTED,
        lambda y, m: skm.f1_score(y, m.predicted, average="weighted", zero_division=0),
    ),
    (
        Metric.PRECISION_MACRO,
        lambda y, m: skm.precision_score(y, m.predicted, average="macro", zero_division=0),
    ),
    (
        Metric.RECALL_MACRO,
        lambda y, m: skm.recall_score(y, m.predicted, average="macro", zero_division=0),
    ),
    (Metric.LOG_LOSS, lambda y, m: skm.log_loss(y, m.proba, labels=m.classes)),
    (
        Metric.ROC_AUC_OVR,
        lambda y, m: skm.roc_auc_score(y, m.proba, multi_class="ovr", labels=m.classes),
    ),
]
REGRESSION: list[tuple[Metric, Callable[[Any, Any], float]]] = [
    (Metric.MAE, skm.mean_absolute_error),
    (Metric.MSE, skm.mean_squared_error),
    (Metric.RMSE, skm.root_mean_squared_error),
    (Metric.R2, skm.r2_score),
    (Metric.MAPE, skm.mean_absolute_percentage_error),
]


@pytest.mark.parametrize(("metric", "reference"), CLASSIFICATION, ids=lambda v: str(v))
def test_vectorised_classification_metrics_equal_scikit_learn(
    metric: Metric, reference: Callable[[Any, Predictions], float]
) -> None:
    rng = np.random.default_rng(3)
    data = _labels(rng)
    y, model = data["y"], data["model"]
    score = _scorer(metric, y, model)
    assert float(score(np.arange(len(y)))) == pytest.approx(reference(y, model), abs=1e-12)
    resamples = rng.integers(0, len(y), size=(4, len(y)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about the never-true label
        expected = [
            reference(y[rows], Predictions(model.predicted[rows], model.proba[rows], model.classes))
            for rows in resamples
        ]
    assert score(resamples) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("metric", "reference"), REGRESSION, ids=lambda v: str(v))
def test_vectorised_regression_metrics_equal_scikit_learn(
    metric: Metric, reference: Callable[[Any, Any], float]
) -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(3, 2, size=300)
    predicted = y + rng.normal(0, 1, size=300)
    score = _scorer(metric, y, Predictions(predicted))
    assert float(score(np.arange(300))) == pytest.approx(reference(y, predicted), rel=1e-12)
    resamples = rng.integers(0, 300, size=(4, 300))
    expected = [reference(y[rows], predicted[rows]) for rows in resamples]
    assert score(resamples) == pytest.approx(expected, rel=1e-12)


def test_accuracy_interval_is_scipy_bootstrap_of_the_paired_differences() -> None:
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, size=500)
    ours = np.where(rng.random(500) < 0.85, y, 1 - y)
    theirs = np.where(rng.random(500) < 0.80, y, 1 - y)
    result = paired_comparison(Metric.ACCURACY, y, Predictions(ours), Predictions(theirs), seed=42)
    differences = (ours == y).astype(float) - (theirs == y).astype(float)
    reference = stats.bootstrap(
        (differences,),
        np.mean,
        n_resamples=RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(42),
    ).confidence_interval
    assert result.delta == pytest.approx(differences.mean())
    assert result.interval == pytest.approx((reference.low, reference.high))
    assert result.test == "McNemar"
    assert result.p_value == pytest.approx(mcnemar_p_value(ours == y, theirs == y))
    again = paired_comparison(Metric.ACCURACY, y, Predictions(ours), Predictions(theirs), seed=42)
    assert again == result  # seeded


def test_regression_p_value_is_the_paired_t_test_on_row_losses() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(size=200)
    ours, theirs = y + rng.normal(0, 0.9, 200), y + rng.normal(0, 1.0, 200)
    result = paired_comparison(Metric.RMSE, y, Predictions(ours), Predictions(theirs), seed=1)
    expected = stats.ttest_rel((theirs - y) ** 2, (ours - y) ** 2).pvalue
    assert result.test == "PairedTTest"
    assert result.p_value == pytest.approx(expected)
    rmse = skm.root_mean_squared_error
    assert result.delta == pytest.approx(rmse(y, theirs) - rmse(y, ours))  # lower is better
    assert result.interval is not None and result.interval[0] < result.delta < result.interval[1]


def test_bootstrap_p_value_separates_a_real_gap_from_noise() -> None:
    rng = np.random.default_rng(8)
    y = rng.choice(["a", "b", "c"], size=600)
    good = np.where(rng.random(600) < 0.9, y, "a")
    poor = np.where(rng.random(600) < 0.6, y, "a")
    # As good as `poor`: 5 of its right rows made wrong, 5 of its wrong rows made right.
    same = poor.copy()
    right, wrong = np.flatnonzero(poor == y), np.flatnonzero(poor != y)
    same[right[:5]] = np.where(y[right[:5]] == "a", "b", "a")
    same[wrong[:5]] = y[wrong[:5]]
    clear = paired_comparison(Metric.F1_MACRO, y, Predictions(good), Predictions(poor), seed=0)
    noise = paired_comparison(Metric.F1_MACRO, y, Predictions(same), Predictions(poor), seed=0)
    assert clear.test == "PairedBootstrap"
    assert clear.p_value == pytest.approx(2 / (RESAMPLES + 1))  # no resample at or below 0
    assert noise.p_value is not None and noise.p_value > 0.5
    chosen = paired_comparison(
        Metric.ACCURACY, y, Predictions(good), Predictions(poor), seed=0, test="PairedBootstrap"
    )
    assert chosen.test == "PairedBootstrap"


def test_identical_predictions_have_no_evidence_either_way() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    same = Predictions(np.array([1.5, 2.0, 2.5, 4.5]))
    result = paired_comparison(Metric.MAE, y, same, same, seed=0)
    assert (result.delta, result.interval, result.p_value) == (0.0, (0.0, 0.0), 1.0)


def test_mcnemar_only_for_accuracy_and_empty_rows_refused() -> None:
    y = np.array([1.0, 2.0])
    model = Predictions(np.array([1.0, 2.5]))
    with pytest.raises(ValueError, match="McNemar"):
        paired_comparison(Metric.MAE, y, model, model, seed=0, test="McNemar")
    with pytest.raises(ValueError, match="no rows"):
        paired_comparison(Metric.MAE, y[:0], Predictions(y[:0]), Predictions(y[:0]), seed=0)
