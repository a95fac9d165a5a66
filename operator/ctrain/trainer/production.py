"""Labelled production rows as training data (`dataset.feedback`).

With feedback enabled the run joins the model's logged predictions of the last
`windowSeconds` with the labels uploaded under `<prefix>/<model>/labels/`
(`ctrain.feedback.joining`, the newest `maxRows` labelled rows) and either appends those
rows to the base data set (`Append`) or trains on them alone (`Replace`). They are
ordinary rows from then on: the content-hash split (`trainer.split`) hashes them like
any other, so a production row is in the holdout of every run that sees it, or in none.

The data fingerprint covers both parts: the base data set's fingerprint and a digest of
the production rows' content, so the same labels give the same fingerprint and a new
label a new one. metadata.json's `dataset.production` says how many rows came from
where.

A production row needs every feature the run trains on: a feature left out of the log
(`predictionLog.excludeColumns`) makes the run fail with InvalidSpec rather than train
on a column of missing values.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from ctrain.api import Reason, Task, TrainingJobSpec
from ctrain.api.contracts import ProductionRecord
from ctrain.feedback import LABEL, Window, join
from ctrain.registry import Layout, RegistryError
from ctrain.storage import S3Client
from ctrain.trainer.data import Dataset
from ctrain.trainer.errors import TrainerError

__all__ = ["with_production_rows"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Combined:
    """The data set the run trains on, and where its rows came from."""

    dataset: Dataset
    record: ProductionRecord


def with_production_rows(
    dataset: Dataset,
    spec: TrainingJobSpec,
    features: list[str],
    s3: S3Client,
    layout: Layout,
    clock: Callable[[], datetime],
) -> Combined:
    """The base data set with the labelled production rows (Append) or those alone
    (Replace); raises TrainerError."""
    feedback = spec.dataset.feedback
    assert feedback is not None and feedback.enabled
    target = spec.dataset.target_column
    window = Window.ending(clock(), feedback.window_seconds)
    try:
        joined = join(
            s3,
            layout,
            spec.model,
            target=target,
            window=window,
            max_rows=feedback.max_rows,
            features=True,
        )
    except RegistryError as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"production rows: {exc}") from exc
    rows = joined.rows
    production = _as_table(rows, joined.features, features, target, dataset.frame, spec.task)
    base = dataset.frame
    if feedback.mode == "Replace":
        frame = production.reset_index(drop=True)
    else:
        frame = pd.concat([base, production], ignore_index=True)
    digest = _content_digest(production)
    record = ProductionRecord(
        mode=feedback.mode,
        window_seconds=feedback.window_seconds,
        base_rows=0 if feedback.mode == "Replace" else len(base),
        production_rows=len(production),
        labelled=joined.labelled,
        samples=joined.samples,
        truncated=joined.truncated,
        fingerprint=digest,
    )
    log.info(
        "production rows mode=%s base=%d production=%d labelled=%d truncated=%s",
        feedback.mode,
        record.base_rows,
        record.production_rows,
        record.labelled,
        record.truncated,
    )
    if frame.empty:
        raise TrainerError(
            Reason.DATA_VALIDATION_FAILED,
            f"dataset.feedback mode {feedback.mode}: no labelled production rows of "
            f"{spec.model} in the last {feedback.window_seconds}s to train on",
        )
    combined = hashlib.sha256(f"{dataset.fingerprint}\n{digest}".encode()).hexdigest()
    return Combined(Dataset(frame, dataset.uri, f"sha256:{combined}"), record)


def _as_table(
    rows: pd.DataFrame,
    columns: dict[str, str],
    features: list[str],
    target: str,
    base: pd.DataFrame,
    task: Task,
) -> pd.DataFrame:
    """The joined rows in the base data set's shape: its features and target."""
    if rows.empty:
        return base.iloc[0:0][[*features, target]].copy()
    by_feature = {feature: column for column, feature in columns.items()}
    missing = [f for f in features if f not in by_feature or by_feature[f] not in rows.columns]
    if missing:
        raise TrainerError(
            Reason.INVALID_SPEC,
            f"dataset.feedback: the prediction log has no column for {', '.join(missing)} "
            "(left out by predictionLog.excludeColumns?); a model retrained on production "
            "rows needs every feature logged",
        )
    table = pd.DataFrame({feature: rows[by_feature[feature]] for feature in features})
    table[target] = _labels(rows[LABEL], base.get(target), task)
    return table.dropna(subset=[target]).reset_index(drop=True)


def _labels(values: pd.Series, base: pd.Series | None, task: Task) -> pd.Series:
    """Labels as the base target's type (labels arrive as text from CSV)."""
    if task == Task.REGRESSION or (base is not None and pd.api.types.is_numeric_dtype(base)):
        return pd.to_numeric(values, errors="coerce")
    if base is not None and pd.api.types.is_bool_dtype(base):
        return values.astype(str).str.lower().map({"true": True, "false": False})
    return values.astype(str)


def _content_digest(table: pd.DataFrame) -> str:
    """`sha256:<hex>` of the rows' content, independent of their order."""
    if table.empty:
        return "sha256:" + hashlib.sha256(b"").hexdigest()
    hashes = pd.util.hash_pandas_object(table, index=False).sort_values().to_numpy()
    return "sha256:" + hashlib.sha256(hashes.tobytes()).hexdigest()
