"""The join: logged predictions inside a window, each with the newest label for its
(`id`, `row`), counted per model version; missing labels are counted, never guessed.

Both the trainer (`dataset.feedback`: labelled production rows to train on) and the
live-performance pod (`ctrain evaluate-live`: the served versions' metric) call `join`.

Bounded memory. Label objects last modified before the window starts are not read: a
label is uploaded after its prediction was served, so such an object holds no label for
a prediction inside the window. Prediction objects are listed only for the days of the
window and read one at a time, newest first; every row of the window is counted, but at
most `max_rows` labelled rows (the newest) are kept. Objects larger than
`max_object_bytes`, and objects that are not readable tables, are skipped and reported.

A client that sends one request id twice makes its label ambiguous: the newest logged
prediction of an (id, row) is kept and the others are counted as `duplicates`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ctrain.feedback.labels import (
    ID,
    LABEL,
    ROW,
    UnreadableObject,
    newest_labels,
    parse_labels,
)
from ctrain.feedback.layout import (
    LABEL_SUFFIXES,
    Window,
    labels_root,
    prediction_day_prefixes,
)
from ctrain.feedback.objects import ObjectInfo, list_objects, read_object
from ctrain.feedback.predictions import TS, VERSION, parse_predictions
from ctrain.registry.layout import Layout
from ctrain.storage import S3Client

__all__ = ["DEFAULT_MAX_OBJECT_BYTES", "Joined", "VersionCounts", "join"]

log = logging.getLogger(__name__)

DEFAULT_MAX_OBJECT_BYTES = 512 * 1024 * 1024
_SKIPPED_KEPT = 20  # skipped objects named in a result (all are counted)
_KEY_SEPARATOR = "\x1f"


@dataclass
class VersionCounts:
    """Logged predictions of one version inside the window, and how many have a label."""

    samples: int = 0
    labelled: int = 0


@dataclass
class Joined:
    """The outcome of a join. `rows` holds the kept labelled predictions, newest first:
    the log's columns (`id`, `row`, `ts`, `version`, features if asked, `prediction`,
    `proba_*`) and `LABEL`."""

    window: Window
    rows: pd.DataFrame
    counts: dict[str, VersionCounts] = field(default_factory=dict)
    features: dict[str, str] = field(default_factory=dict)  # log column -> feature
    label_objects: int = 0
    labels: int = 0  # distinct labelled (id, row) read
    dropped_labels: int = 0  # label rows without id, value or a valid row
    prediction_objects: int = 0
    skipped: int = 0
    skipped_keys: list[str] = field(default_factory=list)  # "key: why", the first few
    truncated: bool = False  # more labelled rows than max_rows
    duplicates: int = 0

    @property
    def samples(self) -> int:
        return sum(c.samples for c in self.counts.values())

    @property
    def labelled(self) -> int:
        return sum(c.labelled for c in self.counts.values())

    def skip(self, key: str, why: str) -> None:
        log.warning("skipped s3 object %s: %s", key, why)
        self.skipped += 1
        if len(self.skipped_keys) < _SKIPPED_KEPT:
            self.skipped_keys.append(f"{key}: {why}")


def join(
    s3: S3Client,
    layout: Layout,
    model: str,
    *,
    target: str,
    window: Window,
    max_rows: int,
    features: bool = False,
    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
) -> Joined:
    """Join the model's logged predictions inside `window` with its labels (`target` is
    the labels' value column). Raises `StorageUnavailable` when S3 fails."""
    if max_rows < 1:
        raise ValueError("max_rows must be at least 1")
    result = Joined(window=window, rows=pd.DataFrame())
    labels = _read_labels(s3, layout, model, target, window, max_object_bytes, result)
    result.labels = len(labels)
    index = pd.Index(_keys(labels[ID], labels[ROW]))
    values = labels[LABEL].to_numpy(dtype=object)
    kept: list[pd.DataFrame] = []
    room = max_rows
    for info in _prediction_objects(s3, layout, model, window):
        if info.size > max_object_bytes:
            result.skip(info.key, f"{info.size} bytes, more than {max_object_bytes}")
            continue
        data = read_object(s3, layout.bucket, info.key)
        if data is None:
            continue
        try:
            table = parse_predictions(data, window, features=features)
        except UnreadableObject as exc:
            result.skip(info.key, str(exc))
            continue
        result.prediction_objects += 1
        result.features.update(table.features)
        frame = table.frame
        if frame.empty:
            continue
        position = index.get_indexer(_keys(frame[ID], frame[ROW])) if len(index) else None
        labelled = np.zeros(len(frame), bool) if position is None else position >= 0
        _count(result.counts, frame[VERSION], labelled)
        if not labelled.any():
            continue
        hits = frame[labelled].copy()
        assert position is not None
        hits[LABEL] = values[position[labelled]]
        if room <= 0:
            result.truncated = True
            continue
        if len(hits) > room:
            result.truncated = True
            hits = hits.sort_values(TS, ascending=False, kind="stable").head(room)
        room -= len(hits)
        kept.append(hits)
    if kept:
        rows = pd.concat(kept, ignore_index=True).sort_values(TS, ascending=False, kind="stable")
        unique = rows.drop_duplicates([ID, ROW], keep="first")
        result.duplicates = len(rows) - len(unique)
        result.rows = unique.reset_index(drop=True)
    log.info(
        "joined model=%s window=%ss samples=%d labelled=%d kept=%d labels=%d skipped=%d",
        model,
        window.seconds,
        result.samples,
        result.labelled,
        len(result.rows),
        result.labels,
        result.skipped,
    )
    return result


def _read_labels(
    s3: S3Client,
    layout: Layout,
    model: str,
    target: str,
    window: Window,
    max_object_bytes: int,
    result: Joined,
) -> pd.DataFrame:
    """Every label of the objects modified since the window started, newest winning."""
    objects = sorted(
        info
        for info in list_objects(s3, layout.bucket, labels_root(layout, model))
        if info.key.lower().endswith(LABEL_SUFFIXES) and info.last_modified >= window.start
    )  # (LastModified, key) ascending: the order in which later labels win
    tables = []
    for info in objects:
        if info.size > max_object_bytes:
            result.skip(info.key, f"{info.size} bytes, more than {max_object_bytes}")
            continue
        data = read_object(s3, layout.bucket, info.key)
        if data is None:
            continue
        try:
            table = parse_labels(data, info.key, target)
        except UnreadableObject as exc:
            result.skip(info.key, str(exc))
            continue
        result.label_objects += 1
        result.dropped_labels += table.dropped
        tables.append(table.frame)
    return newest_labels(tables)


def _prediction_objects(
    s3: S3Client, layout: Layout, model: str, window: Window
) -> list[ObjectInfo]:
    """The log objects of the window's days, newest first."""
    found = [
        info
        for prefix in prediction_day_prefixes(layout, model, window)
        for info in list_objects(s3, layout.bucket, prefix)
        if info.key.endswith(".parquet")
    ]
    return sorted(found, reverse=True)


def _keys(ids: pd.Series, rows: pd.Series) -> np.ndarray:
    """One hashable text key per (id, row), for a hash lookup instead of a merge per object."""
    joined = ids.astype(str).str.cat(rows.astype("int64").astype(str), sep=_KEY_SEPARATOR)
    return np.asarray(joined.to_numpy(dtype=object), dtype=object)


def _count(counts: dict[str, VersionCounts], versions: pd.Series, labelled: np.ndarray) -> None:
    hits = versions[labelled].value_counts()
    for version, n in versions.value_counts().items():
        entry = counts.setdefault(str(version), VersionCounts())
        entry.samples += int(n)
        entry.labelled += int(hits.get(version, 0))
