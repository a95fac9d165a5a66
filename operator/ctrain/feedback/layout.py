"""Where ground truth lives in the bucket, and which time window a join reads.

Pure: keys and dates only, so the trainer, the live-performance pod, the operator and
`ctrain models` agree on them. Logged predictions are under
`<prefix>/<model>/predictions/<yyyy>/<mm>/<dd>/` by the UTC day of their rows
(docs/contracts.md, "Prediction logs"), so a window reads only the listings of its days.
Labels are under `<prefix>/<model>/labels/` with any name ending in .csv or .parquet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ctrain.registry.layout import Layout

__all__ = [
    "LABEL_SUFFIXES",
    "PERFORMANCE_FILE",
    "Window",
    "labels_root",
    "performance_key",
    "prediction_day_prefixes",
]

PERFORMANCE_FILE = "performance.json"
LABEL_SUFFIXES = (".csv", ".parquet", ".pq")


@dataclass(frozen=True)
class Window:
    """Predictions made in [start, end] (request time, UTC) are read."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, seconds: int) -> Window:
        if seconds <= 0:
            raise ValueError(f"a window needs a positive length, got {seconds}s")
        end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
        return cls(end - timedelta(seconds=seconds), end)

    @property
    def seconds(self) -> int:
        return round((self.end - self.start).total_seconds())

    def days(self) -> list[date]:
        """The UTC days the window touches, oldest first."""
        first, last = self.start.date(), self.end.date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def labels_root(layout: Layout, model: str) -> str:
    """`<prefix>/<model>/labels/`: where users upload ground truth."""
    return f"{layout.model_root(model)}labels/"


def prediction_day_prefixes(layout: Layout, model: str, window: Window) -> list[str]:
    """The listing prefixes of the window's days, newest first (the newest rows are kept
    when a join is bounded)."""
    root = layout.predictions_root(model)
    return [f"{root}{day:%Y/%m/%d}/" for day in reversed(window.days())]


def performance_key(layout: Layout, model: str, version: str | int) -> str:
    """`versions/<v>/performance.json`: a version's live performance over time."""
    return layout.key(model, version, PERFORMANCE_FILE)
