"""Which rows a model trains on and which it is judged on: a seeded hash of each row's content.

Continuous training re-trains on a growing table. A random shuffle would put a row in the
holdout of one run and in the training data of the next, so a later run could never tell
which of its holdout rows the champion had already seen, and a champion that memorised its
training data would be scored on rows it learnt by heart. Like TFX's ExampleGen
(``hash_buckets``: the example's fingerprint modulo the total number of buckets), ctrain
assigns each row by a hash of its own values: a row keeps its side however the table
grows, identical rows always land on the same side, and any later run can recompute any
version's split from its `SplitRecord` (seed, testSize, buckets, columns) alone.

The hash, ``method: contentHash`` (a unit test pins it on golden values, so a library
upgrade that changed it would fail there, not silently move rows):

1. each hashed column is put in a canonical form, so that re-reading the same values with
   another dtype changes nothing: numbers and booleans as float64 (``-0.0`` as ``0.0``,
   every NaN alike), everything else as text, a missing value as one sentinel;
2. each column is hashed with pandas' vectorised `hash_array` (SipHash for text, a
   64-bit mix for numbers); the row's hash folds the seed and the columns in order:
   ``h = mix(h ^ column_hash)``, starting from ``mix(seed)``;
3. the row is held out when ``h % buckets < round(testSize * buckets)``.

Stratification does not fit this scheme (it would move a row when other rows change);
the hash is independent of the class, so each class is held out in the same expected
proportion, and the record says ``stratified: false``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

from ctrain.api import Reason
from ctrain.api.contracts import SplitRecord
from ctrain.trainer.errors import TrainerError

__all__ = ["BUCKETS", "METHOD", "HashSplit", "Holdout", "split_holdout"]

METHOD: Final = "contentHash"
BUCKETS = 10_000
_MISSING = "\x00<missing>"


@dataclass(frozen=True)
class HashSplit:
    """The parameters that decide every row's side, recorded in metadata.json."""

    seed: int
    test_size: float
    columns: tuple[str, ...]
    buckets: int = BUCKETS

    @classmethod
    def from_record(cls, record: SplitRecord | None) -> HashSplit | None:
        """The split a version recorded, or None when it cannot be recomputed (random)."""
        if record is None or record.method != METHOD or not record.columns:
            return None
        return cls(
            seed=record.seed,
            test_size=record.test_size,
            columns=tuple(record.columns),
            buckets=record.buckets or BUCKETS,
        )

    def record(self, *, train_rows: int, test_rows: int) -> SplitRecord:
        return SplitRecord(
            method=METHOD,
            test_size=self.test_size,
            seed=self.seed,
            buckets=self.buckets,
            columns=list(self.columns),
            stratified=False,
            train_rows=train_rows,
            test_rows=test_rows,
        )

    def missing_columns(self, frame: pd.DataFrame) -> list[str]:
        return [name for name in self.columns if name not in frame.columns]

    def held_out(self, frame: pd.DataFrame) -> np.ndarray:
        """A boolean mask: True for the rows this split holds out (never trained on)."""
        threshold = round(self.test_size * self.buckets)
        buckets = row_hashes(frame, self.columns, self.seed) % np.uint64(self.buckets)
        return np.asarray(buckets < np.uint64(threshold))


def row_hashes(frame: pd.DataFrame, columns: Sequence[str], seed: int) -> np.ndarray:
    """One uint64 per row, from the seed and the canonical values of ``columns``."""
    rows = len(frame)
    combined = _mix(np.full(rows, seed, dtype=np.uint64))
    for name in columns:
        combined = _mix(combined ^ pd.util.hash_array(_canonical(frame[name])))
    return combined


def _mix(values: np.ndarray) -> np.ndarray:
    # pandas' 64-bit mixing of integer arrays (a splitmix64-style finalizer).
    return np.asarray(pd.util.hash_array(values.astype(np.uint64, copy=False)))


def _canonical(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        numbers = numbers + 0.0  # -0.0 -> 0.0
        numbers[np.isnan(numbers)] = np.nan  # one NaN bit pattern
        return np.asarray(numbers)
    text = column.astype(object)
    filled = text.where(text.notna(), _MISSING)
    if pd.api.types.infer_dtype(filled, skipna=False) == "string":
        # str() of a string is the string: skip a million calls (seconds) for text columns.
        return np.asarray(filled, dtype=object)
    return np.asarray(filled.map(str), dtype=object)


@dataclass(frozen=True)
class Holdout:
    """The rows to fit on and the rows every model (challenger and champion) is scored on."""

    train: pd.DataFrame
    test: pd.DataFrame
    split: HashSplit

    @property
    def record(self) -> SplitRecord:
        return self.split.record(train_rows=len(self.train), test_rows=len(self.test))


def split_holdout(
    frame: pd.DataFrame, *, columns: Sequence[str], test_size: float, seed: int
) -> Holdout:
    """Split by content hash; both sides must hold at least one row."""
    split = HashSplit(seed=seed, test_size=test_size, columns=tuple(columns))
    held = split.held_out(frame)
    test_rows = int(held.sum())
    if test_rows == 0 or test_rows == len(frame):
        side = "holdout" if test_rows == 0 else "training side"
        raise TrainerError(
            Reason.DATA_VALIDATION_FAILED,
            f"dataset: {len(frame)} rows, the split by content hash left the {side} empty "
            f"(testSize {test_size}); more rows are needed",
        )
    return Holdout(train=frame[~held], test=frame[held], split=split)
