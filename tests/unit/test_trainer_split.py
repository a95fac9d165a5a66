"""The split by content hash: seeded, stable as data grows, recomputable from its record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctrain.api import Reason
from ctrain.api.contracts import SplitRecord
from ctrain.trainer.data import builtin_frame
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.split import BUCKETS, METHOD, HashSplit, row_hashes, split_holdout

pytestmark = pytest.mark.unit

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width", "target"]


def test_golden_hashes_pin_the_algorithm() -> None:
    # Versions in registries recompute their split from these hashes: a change of the
    # algorithm (or of pandas' hashing under it) must fail here, never move rows silently.
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "f": [1.0, -0.0, np.nan]})
    assert row_hashes(frame, ["a", "b", "f"], 42).tolist() == [
        3892690792691258590,
        9390622577972984524,
        11547579912163291602,
    ]


def test_the_same_values_hash_alike_whatever_their_dtype() -> None:
    ints = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", None], "f": [1.0, 0.0, None]})
    floats = pd.DataFrame(
        {
            "a": [1.0, 2.0, 3.0],
            "b": pd.Series(["x", "y", np.nan], dtype=object),
            "f": [1.0, -0.0, np.nan],
        }
    )
    flags = pd.DataFrame({"a": [True, False], "b": ["x", "y"], "f": [1, 0]})
    numbers = pd.DataFrame({"a": [1, 0], "b": ["x", "y"], "f": [1.0, 0.0]})
    columns = ["a", "b", "f"]
    assert row_hashes(ints, columns, 7).tolist() == row_hashes(floats, columns, 7).tolist()
    assert row_hashes(flags, columns, 7).tolist() == row_hashes(numbers, columns, 7).tolist()


def test_split_is_seeded_and_near_the_test_size() -> None:
    frame = builtin_frame("iris")
    first = split_holdout(frame, columns=COLUMNS, test_size=0.2, seed=3)
    again = split_holdout(frame, columns=COLUMNS, test_size=0.2, seed=3)
    other = split_holdout(frame, columns=COLUMNS, test_size=0.2, seed=4)
    assert list(first.test.index) == list(again.test.index)
    assert list(first.test.index) != list(other.test.index)
    assert set(first.train.index).isdisjoint(first.test.index)
    assert len(first.train) + len(first.test) == 150
    assert 15 <= len(first.test) <= 45  # binomial(150, 0.2): mean 30, sd 4.9
    assert first.record == SplitRecord(
        method=METHOD,
        test_size=0.2,
        seed=3,
        buckets=BUCKETS,
        columns=COLUMNS,
        stratified=False,
        train_rows=len(first.train),
        test_rows=len(first.test),
    )


def test_a_row_keeps_its_side_as_the_data_grows_and_is_shuffled() -> None:
    rng = np.random.default_rng(0)
    old = pd.DataFrame({"x": rng.normal(size=2000), "c": rng.choice(["u", "v"], 2000)})
    new = pd.DataFrame(
        {"x": rng.normal(size=3000), "c": rng.choice(["u", "v"], 3000)},
        index=range(10_000, 13_000),
    )
    grown = pd.concat([new.iloc[:1500], old, new.iloc[1500:]]).sample(frac=1, random_state=1)
    split = HashSplit(seed=42, test_size=0.25, columns=("x", "c"))
    before = pd.Series(split.held_out(old), index=old.index)
    after = pd.Series(split.held_out(grown), index=grown.index)
    assert (after.loc[old.index] == before).all()
    assert 0.2 < after.mean() < 0.3


def test_identical_rows_land_on_the_same_side() -> None:
    frame = pd.DataFrame({"x": [1.5] * 50 + list(range(50)), "y": ["a"] * 50 + ["b"] * 50})
    held = HashSplit(seed=1, test_size=0.3, columns=("x", "y")).held_out(frame)
    assert len(set(held[:50].tolist())) == 1


def test_the_record_recomputes_the_split() -> None:
    frame = builtin_frame("wine")
    columns = list(frame.columns)
    holdout = split_holdout(frame, columns=columns, test_size=0.3, seed=9)
    again = HashSplit.from_record(holdout.record)
    assert again == holdout.split
    assert (again.held_out(frame) == frame.index.isin(holdout.test.index)).all()


def test_a_random_split_cannot_be_recomputed() -> None:
    record = SplitRecord(test_size=0.2, seed=1, stratified=True, train_rows=8, test_rows=2)
    assert HashSplit.from_record(record) is None
    assert HashSplit.from_record(None) is None


@pytest.mark.parametrize("rows", [1, 3])
def test_a_split_with_an_empty_side_fails_validation(rows: int) -> None:
    frame = pd.DataFrame({"x": [float(i) for i in range(rows)], "y": [1.0] * rows})
    split = HashSplit(seed=0, test_size=0.01, columns=("x", "y"))
    if split.held_out(frame).any():  # pragma: no cover - the seed is chosen so it is not
        pytest.fail("the chosen seed must hold out no row of this tiny frame")
    with pytest.raises(TrainerError) as caught:
        split_holdout(frame, columns=["x", "y"], test_size=0.01, seed=0)
    assert caught.value.reason == Reason.DATA_VALIDATION_FAILED
    assert "holdout empty" in caught.value.message


def test_text_columns_hash_as_their_str_values() -> None:
    # Text columns skip str() per value; mixed columns still go through it, alike.
    text = pd.DataFrame({"b": pd.Series(["1", "x", None, "2.5"], dtype=object)})
    mixed = pd.DataFrame({"b": pd.Series([1, "x", None, 2.5], dtype=object)})
    strings = pd.DataFrame({"b": pd.Series(["1", "x", None, "2.5"], dtype="string")})
    expected = row_hashes(text, ["b"], 3).tolist()
    assert row_hashes(mixed, ["b"], 3).tolist() == expected
    assert row_hashes(strings, ["b"], 3).tolist() == expected
