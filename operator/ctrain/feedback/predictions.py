"""Logged prediction objects as tables, cut to the window.

The columns are those of docs/contracts.md "Prediction logs" (`ctrain.serving.predtable`
writes them): `id`, `row`, `ts`, `version`, the features (a feature named like a log
column is written `feature.<name>`; the file's `ctrain.features` metadata maps every
feature column to its feature), `prediction`, and `proba_<class>` for classifiers.
Rows outside the window are dropped before anything is converted to pandas.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ctrain.feedback.labels import ID, ROW, UnreadableObject
from ctrain.feedback.layout import Window

__all__ = ["PREDICTION", "TS", "VERSION", "PredictionTable", "parse_predictions"]

TS, VERSION, PREDICTION = "ts", "version", "prediction"
_REQUIRED = (ID, ROW, TS, VERSION, PREDICTION)
_FEATURES_KEY = b"ctrain.features"


@dataclass(frozen=True)
class PredictionTable:
    """One object's rows inside the window, and its feature columns (column -> feature)."""

    frame: pd.DataFrame
    features: dict[str, str]


def parse_predictions(data: bytes, window: Window, *, features: bool) -> PredictionTable:
    """The rows of one log object made inside `window`; features only when asked for."""
    try:
        table = pq.read_table(io.BytesIO(data))
        mapping = json.loads((table.schema.metadata or {}).get(_FEATURES_KEY, b"{}"))
    except Exception as exc:  # classified: whatever pyarrow refuses is an unreadable object
        raise UnreadableObject(f"not readable as Parquet: {type(exc).__name__}: {exc}") from exc
    missing = [name for name in _REQUIRED if name not in table.column_names]
    if missing or not isinstance(mapping, dict):
        raise UnreadableObject(f"not a prediction log (missing {missing or 'ctrain.features'})")
    try:
        ts = table[TS].cast(pa.timestamp("ms", tz="UTC"))
        inside = pc.and_(
            pc.greater_equal(ts, pa.scalar(window.start, pa.timestamp("ms", tz="UTC"))),
            pc.less_equal(ts, pa.scalar(window.end, pa.timestamp("ms", tz="UTC"))),
        )
        table = table.filter(inside)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise UnreadableObject(f"column ts is not a timestamp: {exc}") from exc
    keep = [*_REQUIRED, *(c for c in table.column_names if c.startswith("proba_"))]
    feature_columns = {str(k): str(v) for k, v in mapping.items() if k in table.column_names}
    if features:
        keep += [c for c in feature_columns if c not in keep]
    frame = table.select(keep).to_pandas()
    frame[ID] = frame[ID].astype(str).to_numpy(dtype=object)
    frame[ROW] = frame[ROW].astype("int64")
    frame[VERSION] = frame[VERSION].astype(str).to_numpy(dtype=object)
    return PredictionTable(frame, feature_columns)
