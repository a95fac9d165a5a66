"""Prediction logs and label objects as the documented contract writes them.

The join's tests write log objects with pyarrow in the layout and columns of
docs/contracts.md ("Prediction logs"), independently of the server's own writer, so the
tests pin the contract rather than one implementation of it; `test_feedback_join`
also joins what the real server logged.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]


def log_table(
    rows: Sequence[dict[str, Any]],
    *,
    features: Sequence[str] = IRIS_FEATURES,
    classes: Sequence[Any] | None = IRIS_CLASSES,
    prediction_type: pa.DataType | None = None,
) -> pa.Table:
    """A log object's table: each row a dict with id, row, ts (datetime), version, the
    features, prediction and (for classifiers) proba (a list, in `classes` order)."""
    columns: dict[str, pa.Array] = {
        "id": pa.array([r["id"] for r in rows], pa.string()),
        "row": pa.array([r.get("row", 0) for r in rows], pa.int32()),
        "ts": pa.array([r["ts"] for r in rows], pa.timestamp("ms", tz="UTC")),
        "version": pa.array([r["version"] for r in rows], pa.string()),
    }
    for name in features:
        columns[name] = pa.array([float(r[name]) for r in rows], pa.float64())
    columns["prediction"] = pa.array(
        [r["prediction"] for r in rows], prediction_type or pa.string()
    )
    if classes is not None:
        for k, label in enumerate(classes):
            columns[f"proba_{label}"] = pa.array([r["proba"][k] for r in rows], pa.float64())
    mapping = {name: name for name in features}
    return pa.table(columns).replace_schema_metadata({"ctrain.features": json.dumps(mapping)})


def put_log(
    s3: Any, bucket: str, table: pa.Table, *, day: datetime, name: str, model: str = "iris"
) -> str:
    key = f"ctrain/{model}/predictions/{day:%Y/%m/%d}/{name}.parquet"
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return key


def put_labels(s3: Any, bucket: str, name: str, frame: pd.DataFrame, *, model: str = "iris") -> str:
    key = f"ctrain/{model}/labels/{name}"
    if name.endswith(".csv"):
        body = frame.to_csv(index=False).encode()
    else:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        body = buffer.getvalue()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return key


def iris_row(
    request: str, version: str, ts: datetime, prediction: str, *, row: int = 0, x: float = 1.0
) -> dict[str, Any]:
    proba = [1.0 if c == prediction else 0.0 for c in IRIS_CLASSES]
    return {"id": request, "row": row, "ts": ts, "version": version, "prediction": prediction,
            "proba": proba, **{f: x + k for k, f in enumerate(IRIS_FEATURES)}}  # fmt: skip


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
