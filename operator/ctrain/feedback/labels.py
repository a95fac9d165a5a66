"""Label objects as tables: ground truth keyed by (`id`, `row`), the newest label winning.

Users upload labels whenever they arrive, in any order and more than once, as CSV or
Parquet objects under `<prefix>/<model>/labels/` with a column `id` (the inference
request's id), an optional `row` (the row within that request, default 0) and a column
named like the training target. Other columns are ignored. Rules, all vectorised:

- A row without an id or without a label value is not a label (dropped, counted).
- A `row` that is not a whole number >= 0 makes that row invalid (dropped, counted).
- When one (id, row) is labelled more than once, the object modified last wins (S3
  LastModified, then the key, for objects written in the same second); within one object
  the last row wins.
- Class labels are compared as text in one canonical form (`class_text`), so a CSV's
  `1`, a Parquet's `1.0` and a logged int64 prediction `1` are the same class.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

__all__ = [
    "ID",
    "LABEL",
    "ROW",
    "LabelTable",
    "UnreadableObject",
    "class_text",
    "newest_labels",
    "parse_labels",
]

ID, ROW = "id", "row"
LABEL = "ctrain.label"  # the label's column inside a join (never a logged column's name)


class UnreadableObject(Exception):
    """An object that is not a readable label or prediction table; skipped and counted."""


@dataclass(frozen=True)
class LabelTable:
    """One object's labels (`id`: str, `row`: int64, `LABEL`) and the rows it dropped."""

    frame: pd.DataFrame
    dropped: int


def parse_labels(data: bytes, key: str, target: str) -> LabelTable:
    """The labels of one object (CSV or Parquet by its suffix); UnreadableObject if none."""
    wanted = (ID, ROW, target)
    try:
        if key.lower().endswith(".csv"):
            frame = pd.read_csv(
                io.BytesIO(data), usecols=lambda column: column in wanted, dtype={ID: "str"}
            )
        else:
            names = pq.read_schema(io.BytesIO(data)).names
            frame = pq.read_table(
                io.BytesIO(data), columns=[c for c in wanted if c in names]
            ).to_pandas()
    except Exception as exc:  # classified: whatever the parsers refuse is an unreadable object
        raise UnreadableObject(f"not readable: {type(exc).__name__}: {exc}") from exc
    for column in (ID, target):
        if column not in frame.columns:
            raise UnreadableObject(f"has no column {column!r}")
    total = len(frame)
    ids = frame[ID]
    rows = (
        pd.to_numeric(frame[ROW], errors="coerce")
        if ROW in frame.columns
        else pd.Series(0, index=frame.index, dtype="float64")
    )
    valid = ids.notna() & frame[target].notna() & rows.notna() & (rows >= 0) & (rows % 1 == 0)
    labels = pd.DataFrame(
        {
            ID: ids[valid].astype(str).to_numpy(dtype=object),
            ROW: rows[valid].to_numpy(dtype=np.int64),
            LABEL: frame.loc[valid, target].to_numpy(),
        }
    )
    return LabelTable(labels, total - len(labels))


def newest_labels(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """One label per (id, row): `tables` come oldest object first, so the last one wins."""
    if not tables:
        return pd.DataFrame(
            {
                ID: pd.Series(dtype=object),
                ROW: pd.Series(dtype=np.int64),
                LABEL: pd.Series(dtype=object),
            }
        )
    frame = pd.concat(tables, ignore_index=True)
    return frame.drop_duplicates([ID, ROW], keep="last").reset_index(drop=True)


def class_text(values: pd.Series | np.ndarray | Sequence[object]) -> np.ndarray:
    """Class labels as canonical text: whole numbers (and booleans) as integers (`1`, not
    `1.0` or `True`), everything else as `str(value)`."""
    series = pd.Series(np.asarray(values, dtype=object))
    text = series.map(str).to_numpy(dtype=object)
    numbers = pd.to_numeric(series.map(_number), errors="coerce")
    whole = (numbers.notna() & (numbers % 1 == 0)).to_numpy()
    text[whole] = numbers[whole].astype(np.int64).map(str).to_numpy(dtype=object)
    return np.asarray(text, dtype=object)


def _number(value: object) -> object:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, str):
        return value.strip()
    return value
