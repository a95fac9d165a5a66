"""Building the estimator and its preprocessing pipeline from a TrainingJob spec.

The estimator type is a security boundary: a CR must not make the trainer import an
arbitrary path. `ESTIMATOR_CLASSES` imports exactly the paths on the API's allowlist
(`ctrain.api.ESTIMATORS`, the one table, which the api keeps free of scikit-learn).

Parameters are checked before anything is fitted: unknown names against the
estimator's `get_params()` (the error lists the valid ones), and values with
scikit-learn's own parameter validation, so `C: -1` fails as InvalidParams, not
halfway through training.

The pipeline takes a 2-D numpy array in feature order (see `ctrain.trainer.features`):
a ColumnTransformer selects columns by index, numeric ones are median-imputed and
standardized, categorical ones one-hot encoded with unknown categories ignored (a value
first seen in production must not break predictions).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils._param_validation import InvalidParameterError

from ctrain.api import ESTIMATORS, EstimatorSpec, Reason
from ctrain.api.common import shown_names
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.features import NUMERIC

__all__ = ["ESTIMATOR_CLASSES", "build_estimator", "build_pipeline"]


def _import(path: str) -> type[BaseEstimator]:
    module, _, name = path.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise TypeError(f"{path} is not a scikit-learn estimator")
    return cls


# Exactly the API's allowlist: nothing else is ever imported from a name in a CR.
ESTIMATOR_CLASSES: Mapping[str, type[BaseEstimator]] = MappingProxyType(
    {path: _import(path) for path in ESTIMATORS}
)


def build_estimator(spec: EstimatorSpec, *, seed: int) -> tuple[BaseEstimator, dict[str, Any]]:
    """The configured estimator and its effective parameters.

    ``random_state`` defaults to the evaluation seed, so a rerun reproduces its model.
    """
    cls = ESTIMATOR_CLASSES.get(spec.type)
    if cls is None:
        raise TrainerError(
            Reason.UNKNOWN_ESTIMATOR,
            f"estimator {spec.type!r} is not allowed; "
            f"one of: {', '.join(sorted(ESTIMATOR_CLASSES))}",
        )
    valid = sorted(cls().get_params(deep=False))
    unknown = sorted(set(spec.params) - set(valid))
    if unknown:
        raise TrainerError(
            Reason.INVALID_PARAMS,
            f"unknown parameters for {spec.type}: {shown_names(unknown)}; "
            f"valid parameters: {', '.join(valid)}",
        )
    params = dict(spec.params)
    if "random_state" in valid and params.get("random_state") is None:
        params["random_state"] = seed
    estimator = cls(**params)
    try:
        # scikit-learn validates parameters in fit(); check them now, before any work.
        estimator._validate_params()
    except InvalidParameterError as exc:
        raise TrainerError(Reason.INVALID_PARAMS, f"{spec.type}: {exc}") from exc
    return estimator, params


def build_pipeline(estimator: BaseEstimator, kinds: Mapping[str, str]) -> Pipeline:
    """features (numpy, in ``kinds`` order) → ColumnTransformer by index → estimator."""
    numeric = [index for index, kind in enumerate(kinds.values()) if kind == NUMERIC]
    categorical = [index for index, kind in enumerate(kinds.values()) if kind != NUMERIC]
    transformers: list[tuple[str, Any, list[int]]] = []
    if numeric:
        scale = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        )
        transformers.append(("numeric", scale, numeric))
    if categorical:
        encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", encode, categorical))
    features = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("features", features), ("estimator", estimator)])
