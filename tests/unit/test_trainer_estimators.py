"""The estimator allowlist, parameter checks, and the pipeline every model is wrapped in."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import skops.io
from sklearn.base import is_classifier, is_regressor

from ctrain.api import ESTIMATORS, EstimatorSpec, Reason, Task
from ctrain.registry.trust import TRUSTED_TYPES, check_trusted, loads_trusted
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.estimators import ESTIMATOR_CLASSES, build_estimator, build_pipeline

pytestmark = pytest.mark.unit

KINDS = {"x1": "numeric", "x2": "numeric", "color": "categorical"}


def _mixed_data(task: Task) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    rows = 60
    matrix = np.empty((rows, 3), dtype=object)
    matrix[:, 0] = rng.normal(size=rows)
    matrix[:, 1] = rng.normal(size=rows)
    matrix[:, 2] = rng.choice(["red", "green", "blue"], size=rows)
    matrix[3, 0] = np.nan  # imputed
    matrix[4, 2] = None  # a missing category
    signal = matrix[:, 1].astype(float) + (matrix[:, 2] == "red")
    if task == Task.CLASSIFICATION:
        return matrix, np.where(signal > 0.3, "yes", "no")
    return matrix, signal * 3.0 + 1.0


def test_the_class_map_is_exactly_the_api_allowlist() -> None:
    assert set(ESTIMATOR_CLASSES) == set(ESTIMATORS)
    for name, cls in ESTIMATOR_CLASSES.items():
        assert name.rsplit(".", 1)[1] == cls.__name__
        assert cls.__module__.startswith(name.rsplit(".", 1)[0])
        task = ESTIMATORS[name]
        assert is_classifier(cls()) if task == Task.CLASSIFICATION else is_regressor(cls())


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_allowed_estimator_fits_saves_and_loads_with_the_trust_list(name: str) -> None:
    estimator, _ = build_estimator(EstimatorSpec(type=name), seed=0)
    pipeline = build_pipeline(estimator, KINDS)
    matrix, y = _mixed_data(ESTIMATORS[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on a toy problem
        pipeline.fit(matrix, y)
    data = skops.io.dumps(pipeline)
    assert set(check_trusted(data)) <= TRUSTED_TYPES
    loaded = loads_trusted(data)
    probe = np.array([[0.1, -0.2, "red"], [1.0, 2.0, "never-seen"]], dtype=object)
    assert loaded.predict(probe).tolist() == pipeline.predict(probe).tolist()


def test_an_all_numeric_pipeline_takes_a_float_array() -> None:
    estimator, _ = build_estimator(EstimatorSpec(type="sklearn.svm.SVR"), seed=0)
    pipeline = build_pipeline(estimator, {"a": "numeric", "b": "numeric"})
    pipeline.fit(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), np.array([0.0, 1.0, 2.0]))
    assert pipeline.predict(np.array([[1.0, 1.0]])).shape == (1,)


def test_random_state_defaults_to_the_seed_but_is_never_overridden() -> None:
    spec = EstimatorSpec(type="sklearn.ensemble.RandomForestClassifier")
    _, params = build_estimator(spec, seed=7)
    assert params == {"random_state": 7}
    spec = EstimatorSpec(type="sklearn.ensemble.RandomForestClassifier", params={"random_state": 1})
    estimator, params = build_estimator(spec, seed=7)
    assert params == {"random_state": 1}
    assert estimator.get_params()["random_state"] == 1
    _, params = build_estimator(EstimatorSpec(type="sklearn.naive_bayes.GaussianNB"), seed=7)
    assert params == {}  # no random_state parameter at all


def test_unknown_parameters_list_the_valid_ones() -> None:
    spec = EstimatorSpec(type="sklearn.svm.SVC", params={"C": 1.0, "gama": 0.1, "kernal": "rbf"})
    with pytest.raises(TrainerError) as caught:
        build_estimator(spec, seed=0)
    assert caught.value.reason == Reason.INVALID_PARAMS
    message = str(caught.value)
    assert message.startswith("unknown parameters for sklearn.svm.SVC: gama, kernal; ")
    assert "valid parameters: C, break_ties, cache_size, class_weight, coef0" in message


@pytest.mark.parametrize(
    ("name", "params", "fragment"),
    [
        ("sklearn.linear_model.LogisticRegression", {"C": -1.0}, "'C' parameter"),
        ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": "many"}, "'n_estimators'"),
        ("sklearn.svm.SVC", {"kernel": "quantum"}, "'kernel' parameter"),
    ],
)
def test_invalid_values_are_caught_before_fitting(
    name: str, params: dict[str, object], fragment: str
) -> None:
    with pytest.raises(TrainerError) as caught:
        build_estimator(EstimatorSpec(type=name, params=params), seed=0)
    assert caught.value.reason == Reason.INVALID_PARAMS
    assert fragment in str(caught.value)


def test_a_name_off_the_allowlist_is_never_imported() -> None:
    # The API model rejects it first; the trainer refuses even if that were bypassed.
    spec = EstimatorSpec.model_construct(type="os.system", params={})
    with pytest.raises(TrainerError) as caught:
        build_estimator(spec, seed=0)
    assert caught.value.reason == Reason.UNKNOWN_ESTIMATOR
