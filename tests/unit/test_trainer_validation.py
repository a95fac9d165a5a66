"""Data validation: every rule, every failure collected, messages that name column and rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from ctrain.api import Expectations, Reason, Task
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.validation import check_columns, check_expectations, validate

pytestmark = pytest.mark.unit


def _expect(columns: dict[str, Any], **rows: int) -> Expectations:
    return Expectations.model_validate({"columns": columns, **rows})


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "length": [1.0, 2.5, 30.0, 40.0, np.nan],
            "count": [1, 2, 3, 4, 5],
            "label": ["a", "b", "a", "c", "a"],
            "flag": ["true", "false", "1", "0", "yes"],
            "code": [1.0, 2.0, np.nan, 4.0, 5.0],
        }
    )


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        ({"length": {"max": 20}}, ["column length: 2 values above max 20.0"]),
        ({"length": {"min": 2}}, ["column length: 1 value below min 2.0"]),
        ({"length": {"nullable": False}}, ["column length: 1 null value (nullable: false)"]),
        ({"length": {"type": "float", "min": 0, "max": 50, "nullable": True}}, []),
        ({"count": {"type": "int", "min": 1, "max": 5}}, []),
        ({"length": {"type": "int"}}, ["column length: 1 value is not int (e.g. '2.5')"]),
        ({"code": {"type": "int"}}, []),  # integral floats (a column with gaps) are ints
        (
            {"label": {"type": "float"}},
            ["column label: 5 values are not float (e.g. 'a', 'b', 'c')"],
        ),
        (
            {"label": {"allowed": ["a", "b"]}},
            ["column label: 1 value not in allowed [a, b] (e.g. 'c')"],
        ),
        ({"count": {"allowed": ["1", "2", "3", "4", "5"]}}, []),  # compared as strings
        ({"code": {"allowed": ["1", "2", "4", "5"]}}, []),  # 1.0 is "1"
        ({"flag": {"type": "bool"}}, ["column flag: 1 value is not bool (e.g. 'yes')"]),
        ({"label": {"type": "category"}, "count": {"type": "string"}}, []),
        ({"missing": {"type": "float"}}, ["column missing: missing from the dataset"]),
        (
            {"label": {"min": 0}},
            ["column label: 5 values are not numbers (min/max need numbers) (e.g. 'a', 'b', 'c')"],
        ),
    ],
)
def test_column_rules(columns: dict[str, Any], expected: list[str]) -> None:
    assert check_expectations(_frame(), _expect(columns)) == expected


def test_row_counts() -> None:
    assert check_expectations(_frame(), _expect({}, minRows=10)) == [
        "dataset: 5 rows, fewer than minRows 10"
    ]
    assert check_expectations(_frame(), _expect({}, maxRows=3)) == [
        "dataset: 5 rows, more than maxRows 3"
    ]
    assert check_expectations(_frame(), _expect({}, minRows=5, maxRows=5)) == []


def test_bool_columns_are_not_floats() -> None:
    frame = pd.DataFrame({"b": [True, False, True]})
    assert check_expectations(frame, _expect({"b": {"type": "bool"}})) == []
    assert check_expectations(frame, _expect({"b": {"type": "float"}})) == [
        "column b: 3 values are not float (bool column) (e.g. 'True', 'False')"
    ]


def test_every_failure_is_collected_into_one_error() -> None:
    expectations = _expect(
        {"length": {"max": 20, "nullable": False}, "label": {"allowed": ["a"]}}, minRows=9
    )
    with pytest.raises(TrainerError) as caught:
        validate(
            _frame(), expectations, target="label", features=["length"], task=Task.CLASSIFICATION
        )
    assert caught.value.reason == Reason.DATA_VALIDATION_FAILED
    assert str(caught.value).split("; ") == [
        "dataset: 5 rows, fewer than minRows 9",
        "column length: 1 null value (nullable: false)",
        "column length: 2 values above max 20.0",
        "column label: 2 values not in allowed [a] (e.g. 'b', 'c')",
    ]


@pytest.mark.parametrize(
    ("frame", "target", "features", "task", "expected"),
    [
        (
            pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", None]}),
            "y",
            ["x"],
            Task.CLASSIFICATION,
            ["target column y: 1 null value"],
        ),
        (
            pd.DataFrame({"x": [1, 2]}),
            "y",
            ["x", "z"],
            Task.CLASSIFICATION,
            ["target column y: missing from the dataset", "features missing from the dataset: z"],
        ),
        (
            pd.DataFrame({"x": [1, 2, 3], "y": [0.5, 1.7, 2.2]}),
            "y",
            ["x"],
            Task.CLASSIFICATION,
            ["target column y: continuous values, but the estimator is a classifier"],
        ),
        (
            pd.DataFrame({"x": [1, 2], "y": ["a", "a"]}),
            "y",
            ["x"],
            Task.CLASSIFICATION,
            ["target column y: fewer than 2 classes"],
        ),
        (
            pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}),
            "y",
            ["x"],
            Task.REGRESSION,
            ["target column y: 2 values are not numbers, but the estimator is a regressor"],
        ),
        (
            pd.DataFrame({"x": [1, 2], "y": [0, 1]}),
            "y",
            ["x", "y", "x"],
            Task.CLASSIFICATION,
            [
                "target column y is also listed as a feature",
                "features listed more than once: x",
            ],
        ),
        (pd.DataFrame({"x": [1, 2], "y": [0, 1]}), "y", ["x"], Task.CLASSIFICATION, []),
        (pd.DataFrame({"x": [1, 2], "y": [0, 1]}), "y", ["x"], Task.REGRESSION, []),
    ],
)
def test_target_and_feature_checks(
    frame: pd.DataFrame, target: str, features: list[str], task: Task, expected: list[str]
) -> None:
    assert check_columns(frame, target=target, features=features, task=task) == expected
