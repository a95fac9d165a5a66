"""reference.json: statistics of the training data that drift is measured against.

Computed from the TRAINING split only (the holdout stays unseen), on exactly the values
the model receives (`ctrain.trainer.features.to_matrix`), so the server can compare what
it is sent with what the model learned from:

- numeric features: up to 10 quantile bins; ``edges`` are the distinct deciles (first =
  min, last = max) and ``frequencies`` the share of training rows per bin (served values
  outside the range belong to the outermost bins). A constant feature has one bin.
- categorical features: the share of each value.

``frequencies`` sum to 1 over the non-missing values; ``missing`` is the share of rows
without a value.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ctrain.trainer.features import NUMERIC, to_matrix

__all__ = ["BINS", "compute_reference"]

BINS = 10


def compute_reference(train: pd.DataFrame, kinds: Mapping[str, str]) -> dict[str, Any]:
    """The reference.json document for the training split."""
    matrix = to_matrix(train, kinds)
    rows = len(train)
    features: dict[str, Any] = {}
    for index, (name, kind) in enumerate(kinds.items()):
        column = matrix[:, index]
        if kind == NUMERIC:
            features[name] = _numeric(np.asarray(column, dtype=np.float64), rows)
        else:
            features[name] = _categorical(column, rows)
    return {"rows": rows, "features": features}


def _numeric(values: np.ndarray, rows: int) -> dict[str, Any]:
    present = values[~np.isnan(values)]
    stats: dict[str, Any] = {"kind": "numeric", "edges": [], "frequencies": []}
    stats["missing"] = _share(rows - len(present), rows)
    if not len(present):
        return stats
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, BINS + 1)))
    if len(edges) == 1:
        stats.update(edges=[float(edges[0]), float(edges[0])], frequencies=[1.0])
        return stats
    # np.histogram's bins are [a, b) except the last, [a, b]: every training value counts.
    counts, _ = np.histogram(present, bins=edges)
    stats.update(
        edges=[float(edge) for edge in edges],
        frequencies=[float(count) / len(present) for count in counts],
    )
    return stats


def _categorical(values: np.ndarray, rows: int) -> dict[str, Any]:
    present = [value for value in values.tolist() if value is not None]
    counts = Counter(present)
    total = len(present)
    return {
        "kind": "categorical",
        "frequencies": {str(value): count / total for value, count in counts.most_common()},
        "missing": _share(rows - total, rows),
    }


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
