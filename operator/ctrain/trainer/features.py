"""Feature kinds and the numpy matrix a model takes.

The server never builds a DataFrame per request: the fitted pipeline takes a 2-D numpy
array whose columns are the features in order (docs/contracts.md). This module is the
one place that turns a table into that array, for training, for scoring the champion
on the holdout, and (by the same rule) for what the server must send:

- ``numeric`` features are floats (bools, also "true"/"false" text, become 1.0/0.0;
  missing values NaN);
- ``categorical`` features are strings (missing values None) in an object array.

A feature is categorical when its expectation declares ``type: string`` or ``category``
(so numeric codes can be categories), or, undeclared, when its values are not numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from ctrain.api import Expectations

__all__ = [
    "CATEGORICAL",
    "NUMERIC",
    "FeatureKind",
    "as_text",
    "as_texts",
    "feature_kinds",
    "to_matrix",
]

NUMERIC: Literal["numeric"] = "numeric"
CATEGORICAL: Literal["categorical"] = "categorical"
FeatureKind = Literal["numeric", "categorical"]

_CATEGORICAL_TYPES = frozenset({"string", "category"})
_NUMERIC_TYPES = frozenset({"float", "int", "bool"})
_BOOLS = {"true": 1.0, "false": 0.0}


def feature_kinds(
    frame: pd.DataFrame, features: Sequence[str], expectations: Expectations | None
) -> dict[str, FeatureKind]:
    """Decide numeric or categorical per feature (rule in the module docstring)."""
    declared = expectations.columns if expectations is not None else {}
    kinds: dict[str, FeatureKind] = {}
    for name in features:
        column_type = declared[name].type if name in declared else None
        if column_type in _CATEGORICAL_TYPES:
            kinds[name] = CATEGORICAL
        elif column_type in _NUMERIC_TYPES or _is_number_column(frame[name]):
            kinds[name] = NUMERIC
        else:
            kinds[name] = CATEGORICAL
    return kinds


def _is_number_column(column: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column))


def to_matrix(frame: pd.DataFrame, kinds: Mapping[str, str]) -> np.ndarray:
    """The 2-D array of ``kinds``' features (in order): float64, or object when mixed."""
    names = list(kinds)
    if all(kind == NUMERIC for kind in kinds.values()):
        matrix = np.empty((len(frame), len(names)), dtype=np.float64)
        for index, name in enumerate(names):
            matrix[:, index] = _numeric(frame[name])
        return matrix
    matrix = np.empty((len(frame), len(names)), dtype=object)
    for index, name in enumerate(names):
        if kinds[name] == NUMERIC:
            matrix[:, index] = _numeric(frame[name])
        else:
            matrix[:, index] = _strings(frame[name])
    return matrix


def _numeric(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column):
        column = column.astype("float64")
    elif not pd.api.types.is_numeric_dtype(column):
        # A declared bool column read from CSV as text: "true"/"false" are 1.0/0.0.
        column = column.map(_bool_text)
    return np.asarray(pd.to_numeric(column, errors="coerce"), dtype=np.float64)


def _bool_text(value: Any) -> Any:
    if isinstance(value, str):
        return _BOOLS.get(value.strip().lower(), value)
    return value


def _strings(column: pd.Series) -> np.ndarray:
    values = as_texts(column).to_numpy(dtype=object)
    return np.asarray(np.where(column.isna().to_numpy(), None, values), dtype=object)


def as_texts(column: pd.Series) -> pd.Series:
    """`as_text` of every present value (missing values stay missing)."""
    if pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
        # Text already: as_text would return each value as it is; a million calls cost
        # seconds (the common case of a categorical column read from CSV or Parquet).
        return column
    return column.map(as_text, na_action="ignore")


def as_text(value: Any) -> str:
    """A value as the string a categorical feature (and ``allowed``) compares."""
    # 3.0 read from a CSV column with gaps must match the "3" a client sends.
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)
