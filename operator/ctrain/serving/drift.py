"""Input drift: the Population Stability Index of served rows against training data.

The operator decides whether a deployment drifted (`monitoring.drift.threshold`); the
server only measures, over a sliding window of the last `window` served rows.

Cost model: the hot path only copies each predicted batch into a ring buffer of the
window's numeric feature values (one vectorised slice assignment per batch, O(features)
per row). Binning numeric values happens when the statistics are read (GET /drift, a
/metrics scrape): O(window x features) vectorised numpy, a few milliseconds at most,
and cached until new rows arrive. Binning each batch as it is served measured over 10x
more expensive per request than the copy (a searchsorted per feature per batch) for
statistics that are read once a minute.

Categorical values are the exception: they are binned as they are observed (one dict
lookup per value) and the ring keeps the bin index, never the client's string, so the
window's memory is a few bytes per row whatever clients send.

Bins come from reference.json (docs/contracts.md, `ctrain.trainer.reference`):
- numeric features: the reference quantile `edges`; served values below the first or
  above the last edge fall in the outermost bins (as for the training data), with
  np.histogram's [a, b) convention;
- categorical features: one bin per reference category plus an "other" bin for
  categories never seen in training (its reference frequency is 0);
- every feature also has a "missing" bin (NaN / null), whose reference frequency is the
  `missing` share of training rows; the other bins' frequencies, which reference.json
  gives over the non-missing values, are scaled by (1 - missing) to match.

PSI per feature = sum over bins of (p - q) * ln(p / q), p the served and q the
reference frequency, both floored at `EPSILON` so empty bins stay finite. The overall
score is the mean PSI over the monitored features: it stays on the same scale as one
feature's PSI (< 0.1 stable, 0.1-0.2 moderate, > 0.2 significant shift), so one
threshold works for models with any number of features. Features without usable
reference statistics are not monitored.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EPSILON", "DriftMonitor", "DriftSnapshot"]

EPSILON = 1e-4


@dataclass(frozen=True)
class DriftSnapshot:
    """The drift statistics at one moment; `score` is None before the first row."""

    samples: int
    score: float | None
    features: dict[str, float | None]


@dataclass(frozen=True)
class _Numeric:
    name: str
    column: int  # in the model's input rows
    inner_edges: np.ndarray  # bins: 0..len(inner_edges), then "missing"
    expected: np.ndarray


@dataclass(frozen=True)
class _Categorical:
    name: str
    column: int
    index: dict[str, int]  # category -> bin; then "other", then "missing"
    expected: np.ndarray

    def bins(self, values: list[Any]) -> list[int]:
        other, get = len(self.index), self.index.get
        return [
            get(v, other) if type(v) is str else other + 1 if _is_missing(v) else get(str(v), other)
            for v in values
        ]


class DriftMonitor:
    """A sliding window of served rows, compared with reference.json on demand."""

    def __init__(
        self, features: Sequence[str], reference: Mapping[str, Any], window: int = 5000
    ) -> None:
        if window < 1:
            raise ValueError("the drift window must hold at least one row")
        self.window = window
        self._numeric: list[_Numeric] = []
        self._categorical: list[_Categorical] = []
        stats = reference.get("features", {})
        for column, name in enumerate(features):
            stat = stats.get(name)
            if isinstance(stat, Mapping):
                self._add(name, column, stat)
        columns = {f.column: f.name for f in self._numeric}
        columns.update({f.column: f.name for f in self._categorical})
        self.names = [columns[c] for c in sorted(columns)]  # in the model's column order
        self._numeric_columns = [f.column for f in self._numeric]
        self._categorical_columns = [f.column for f in self._categorical]
        self._numeric_ring = np.empty((window, len(self._numeric)), dtype=np.float64)
        self._categorical_ring = np.empty((window, len(self._categorical)), dtype=np.int32)
        self._next = 0  # next ring row to write
        self.samples = 0  # rows in the window (<= window)
        self._observed = 0  # rows ever observed: invalidates the cached snapshot
        self._cached: tuple[int, DriftSnapshot] | None = None

    def _add(self, name: str, column: int, stat: Mapping[str, Any]) -> None:
        missing = float(stat.get("missing") or 0.0)
        if stat.get("kind") == "categorical":
            shares = stat.get("frequencies") or {}
            frequencies = [*(float(f) for f in shares.values()), 0.0]  # + "other"
            index = {str(category): i for i, category in enumerate(shares)}
            expected = _expected(frequencies, missing)
            self._categorical.append(_Categorical(name, column, index, expected))
            return
        edges = np.asarray(stat.get("edges") or [], dtype=np.float64)
        frequencies = [float(f) for f in stat.get("frequencies") or []]
        if len(edges) < 2 or len(frequencies) != len(edges) - 1:
            return  # no usable statistics (e.g. an all-missing column)
        self._numeric.append(_Numeric(name, column, edges[1:-1], _expected(frequencies, missing)))

    @property
    def enabled(self) -> bool:
        return bool(self.names)

    def observe(self, rows: np.ndarray) -> None:
        """Add a batch of model-input rows to the window (a copy, no binning)."""
        if not self.names or len(rows) == 0:
            return
        rows = rows[-self.window :]
        n = len(rows)
        start = self._next
        first = min(n, self.window - start)  # rows before the ring wraps around
        if self._numeric:
            values = rows[:, self._numeric_columns].astype(np.float64, copy=False)
            self._numeric_ring[start : start + first] = values[:first]
            self._numeric_ring[: n - first] = values[first:]
        for slot, feature in enumerate(self._categorical):
            bins = np.asarray(feature.bins(rows[:, feature.column].tolist()), dtype=np.int32)
            self._categorical_ring[start : start + first, slot] = bins[:first]
            self._categorical_ring[: n - first, slot] = bins[first:]
        self._next = (start + n) % self.window
        self.samples = min(self.window, self.samples + n)
        self._observed += n

    def counts(self) -> tuple[int, dict[str, np.ndarray]]:
        """(rows in the window, each monitored feature's bin counts over them).

        The counts of several windows add up: workers of one pod publish theirs and
        any of them scores the sum (`score`).
        """
        n = self.samples
        counts: dict[str, np.ndarray] = {}
        for slot, feature in enumerate(self._numeric):
            values = self._numeric_ring[:n, slot]
            missing = np.isnan(values)
            bins = np.searchsorted(feature.inner_edges, values[~missing], side="right")
            found = np.bincount(bins, minlength=len(feature.inner_edges) + 1)
            counts[feature.name] = np.append(found, missing.sum())
        for slot, categorical in enumerate(self._categorical):
            categories = self._categorical_ring[:n, slot]
            counts[categorical.name] = np.bincount(categories, minlength=len(categorical.index) + 2)
        return n, counts

    def score(self, samples: int, counts: Mapping[str, np.ndarray]) -> DriftSnapshot:
        """PSI per monitored feature and their mean, for `samples` rows binned as `counts`."""
        psi: dict[str, float | None] = dict.fromkeys(self.names)
        if samples:
            features: list[_Numeric | _Categorical] = [*self._numeric, *self._categorical]
            for feature in features:
                psi[feature.name] = _psi(counts[feature.name] / samples, feature.expected)
        known = [v for v in psi.values() if v is not None]
        return DriftSnapshot(samples, math.fsum(known) / len(known) if known else None, psi)

    def snapshot(self) -> DriftSnapshot:
        """PSI per monitored feature and their mean, over the rows in the window."""
        if self._cached is not None and self._cached[0] == self._observed:
            return self._cached[1]
        snapshot = self.score(*self.counts())
        self._cached = (self._observed, snapshot)
        return snapshot


def _expected(frequencies: list[float], missing: float) -> np.ndarray:
    """Reference shares over all bins, "missing" last, floored at EPSILON."""
    shares = [f * (1.0 - missing) for f in frequencies] + [missing]
    return np.clip(np.asarray(shares, dtype=np.float64), EPSILON, None)


def _psi(served: np.ndarray, expected: np.ndarray) -> float:
    p = np.clip(served, EPSILON, None)
    return float(((p - expected) * np.log(p / expected)).sum())


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
