"""Data validation: the dataset must meet its expectations before anything is trained.

Every rule is checked and every failure is collected, so one run reports all that is
wrong with the data, each message naming the column, the rule and how many values break
it (``column sepal_length: 3 values above max 20.0``). The checks:

- ``minRows`` / ``maxRows`` on the row count;
- per column: present; ``type`` (float and int: values parse as numbers, int ones
  integral; bool: true/false/0/1; string and category accept anything); ``nullable``;
  ``min`` / ``max`` on numeric values; ``allowed`` values compared as strings;
- always: the target and every feature exist, the target has no missing values, and it
  suits the estimator (`ctrain.trainer.evaluate.target_kind`): a classifier needs a
  discrete target with at least two classes, a regressor a numeric one.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ctrain.api import ColumnExpectation, Expectations, Reason, Task
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.evaluate import target_kind
from ctrain.trainer.features import as_text, as_texts

__all__ = ["check_columns", "check_expectations", "validate"]

_BOOL_TEXT = frozenset({"true", "false", "0", "1", "0.0", "1.0"})
_EXAMPLES = 3


def validate(
    frame: pd.DataFrame,
    expectations: Expectations | None,
    *,
    target: str,
    features: Sequence[str],
    task: Task,
) -> None:
    """Raise TrainerError(DataValidationFailed) listing every failed rule."""
    failures = check_columns(frame, target=target, features=features, task=task)
    if expectations is not None:
        failures += check_expectations(frame, expectations)
    if failures:
        raise TrainerError(Reason.DATA_VALIDATION_FAILED, "; ".join(failures))


def check_columns(
    frame: pd.DataFrame, *, target: str, features: Sequence[str], task: Task
) -> list[str]:
    """The checks every dataset gets: target and features present, target usable."""
    failures = []
    if target not in frame.columns:
        failures.append(f"target column {target}: missing from the dataset")
    else:
        nulls = int(frame[target].isna().sum())
        if nulls:
            failures.append(f"target column {target}: {_values(nulls, 'null ')}")
        kind = target_kind(frame[target])
        if task == Task.CLASSIFICATION and kind == "continuous":
            failures.append(
                f"target column {target}: continuous values, but the estimator is a classifier"
            )
        elif task == Task.CLASSIFICATION and frame[target].nunique(dropna=True) < 2:
            failures.append(f"target column {target}: fewer than 2 classes")
        elif task == Task.REGRESSION and not _is_numeric(frame[target]):
            not_numbers = int(_as_numbers(frame[target].dropna()).isna().sum())
            failures.append(
                f"target column {target}: {_values(not_numbers)} are not numbers, "
                "but the estimator is a regressor"
            )
    missing = [name for name in features if name not in frame.columns]
    if missing:
        failures.append(f"features missing from the dataset: {', '.join(missing)}")
    if target in features:
        failures.append(f"target column {target} is also listed as a feature")
    repeated = sorted({name for name in features if list(features).count(name) > 1})
    if repeated:
        failures.append(f"features listed more than once: {', '.join(repeated)}")
    return failures


def check_expectations(frame: pd.DataFrame, expectations: Expectations) -> list[str]:
    """The user's expectations; one message per failed rule."""
    failures = []
    rows = len(frame)
    if expectations.min_rows is not None and rows < expectations.min_rows:
        failures.append(f"dataset: {rows} rows, fewer than minRows {expectations.min_rows}")
    if expectations.max_rows is not None and rows > expectations.max_rows:
        failures.append(f"dataset: {rows} rows, more than maxRows {expectations.max_rows}")
    for name, rule in expectations.columns.items():
        if name not in frame.columns:
            failures.append(f"column {name}: missing from the dataset")
            continue
        failures += [f"column {name}: {problem}" for problem in _check_column(frame[name], rule)]
    return failures


def _check_column(column: pd.Series, rule: ColumnExpectation) -> list[str]:
    problems = []
    nulls = int(column.isna().sum())
    if not rule.nullable and nulls:
        problems.append(f"{_values(nulls, 'null ')} (nullable: false)")
    present = column.dropna()
    is_bool = pd.api.types.is_bool_dtype(present)
    # Parsing a text column as numbers costs seconds at a million rows: only when a rule
    # needs numbers.
    needs_numbers = rule.type in ("float", "int") or rule.min is not None or rule.max is not None
    numbers = _as_numbers(present) if needs_numbers else pd.Series(dtype="float64")
    not_numbers = present[numbers.isna()] if needs_numbers else present.iloc[:0]

    if rule.type in ("float", "int"):
        if is_bool:
            problems.append(_count(present, f"are not {rule.type} (bool column)"))
        elif len(not_numbers):
            problems.append(_count(not_numbers, f"are not {rule.type}"))
        if rule.type == "int" and not is_bool:
            fractional = present[numbers.notna() & (numbers % 1 != 0)]
            if len(fractional):
                problems.append(_count(fractional, "are not int"))
    elif rule.type == "bool" and not is_bool:
        text = present.map(lambda value: as_text(value).strip().lower())
        wrong = present[~text.isin(_BOOL_TEXT)]
        if len(wrong):
            problems.append(_count(wrong, "are not bool"))

    if rule.min is not None or rule.max is not None:
        if len(not_numbers) and rule.type not in ("float", "int"):
            problems.append(_count(not_numbers, "are not numbers (min/max need numbers)"))
        if rule.min is not None:
            below = int((numbers < rule.min).sum())
            if below:
                problems.append(f"{_values(below)} below min {rule.min}")
        if rule.max is not None:
            above = int((numbers > rule.max).sum())
            if above:
                problems.append(f"{_values(above)} above max {rule.max}")

    if rule.allowed is not None:
        allowed = set(rule.allowed)
        wrong = present[~as_texts(present).isin(allowed)]
        if len(wrong):
            listed = ", ".join(rule.allowed)
            problems.append(_count(wrong, f"not in allowed [{listed}]"))
    return problems


def _is_numeric(values: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values))


def _as_numbers(values: pd.Series) -> pd.Series:
    """The values as floats; NaN where a value is not a number. Bools count as numbers."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    return pd.to_numeric(values, errors="coerce").astype("float64")


def _count(wrong: pd.Series, what: str) -> str:
    examples = list(dict.fromkeys(as_text(value) for value in wrong.tolist()))[:_EXAMPLES]
    shown = ", ".join(repr(example) for example in examples)
    if len(wrong) == 1 and what.startswith("are "):
        what = "is " + what.removeprefix("are ")
    return f"{_values(len(wrong))} {what} (e.g. {shown})"


def _values(count: int, adjective: str = "") -> str:
    return f"{count} {adjective}value{'' if count == 1 else 's'}"
