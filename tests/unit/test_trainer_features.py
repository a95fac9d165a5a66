"""Categorical features as text: the vectorised path gives what `as_text` per value gave.

`to_matrix` and the `allowed` check turn a million categorical values into text; doing it
value by value cost seconds, so text columns skip the per-value call. These tests pin
that the result is unchanged for every kind of column a table can hold.
"""

import numpy as np
import pandas as pd
import pytest

from ctrain.api import ColumnExpectation
from ctrain.trainer.features import CATEGORICAL, NUMERIC, as_text, as_texts, to_matrix
from ctrain.trainer.validation import _check_column


def per_value(column: pd.Series) -> list[object]:
    """The rule, one value at a time: missing is None, anything else as_text."""
    return [None if pd.isna(value) else as_text(value) for value in column.tolist()]


COLUMNS = {
    "text with gaps": pd.Series(["a", None, "b", np.nan, "a"], dtype=object),
    "all missing": pd.Series([None, np.nan], dtype=object),
    "floats read with gaps": pd.Series([3.0, np.nan, 2.5, -0.0]),
    "ints": pd.Series([1, 2, 3]),
    "bools and ints mixed": pd.Series([True, 1, False, 0, "x"], dtype=object),
    "pandas strings": pd.Series(["a", pd.NA, "c"], dtype="string"),
    "categorical": pd.Series(["x", None, "y", "x"], dtype="category"),
    "numeric codes as category": pd.Series([1.0, 2.0, None, 10.0]).astype("category"),
}


@pytest.mark.parametrize("name", COLUMNS)
def test_categorical_matrix_column_is_as_text_per_value(name: str) -> None:
    column = COLUMNS[name]
    frame = pd.DataFrame({"c": column, "n": np.arange(len(column), dtype=float)})
    matrix = to_matrix(frame, {"c": CATEGORICAL, "n": NUMERIC})
    assert matrix.dtype == object
    assert matrix[:, 0].tolist() == per_value(column)
    assert all(value is None or type(value) is str for value in matrix[:, 0])


@pytest.mark.parametrize("name", COLUMNS)
def test_as_texts_matches_as_text_on_present_values(name: str) -> None:
    present = COLUMNS[name].dropna()
    assert [str(v) for v in as_texts(present).tolist()] == [as_text(v) for v in present]


def test_allowed_check_counts_the_same_values() -> None:
    column = pd.Series(["a", "b", None, "z", "a", "zz"], dtype=object)
    rule = ColumnExpectation.model_validate({"type": "category", "allowed": ["a", "b"]})
    assert _check_column(column, rule) == ["2 values not in allowed [a, b] (e.g. 'z', 'zz')"]
    numbers = pd.Series([3.0, 4.0, np.nan, 5.5])
    rule = ColumnExpectation.model_validate({"type": "category", "allowed": ["3", "4"]})
    assert _check_column(numbers, rule) == ["1 value not in allowed [3, 4] (e.g. '5.5')"]


def test_min_max_still_checked_on_a_text_column() -> None:
    column = pd.Series(["1", "x", "30"], dtype=object)
    rule = ColumnExpectation.model_validate({"type": "string", "max": 10})
    assert _check_column(column, rule) == [
        "1 value is not numbers (min/max need numbers) (e.g. 'x')",
        "1 value above max 10.0",
    ]


def test_reference_from_the_fitted_matrix_is_the_reference_of_the_table() -> None:
    from sklearn.linear_model import LogisticRegression

    from ctrain.trainer.estimators import build_pipeline
    from ctrain.trainer.reference import compute_reference

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "x": np.where(rng.random(200) < 0.1, np.nan, rng.normal(size=200)),
            "c": rng.choice(["u", "v", None], 200),
        }
    )
    kinds = {"x": NUMERIC, "c": CATEGORICAL}
    matrix = to_matrix(frame, kinds)
    build_pipeline(LogisticRegression(), kinds).fit(matrix, rng.integers(0, 2, 200))
    # The trainer reuses the matrix it fitted on: fitting must not have changed it.
    assert compute_reference(frame, kinds, matrix) == compute_reference(frame, kinds)
