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

import numpy as np
import pandas as pd

from ctrain.api.contracts import CategoricalReference, NumericReference, Reference
from ctrain.trainer.features import NUMERIC, to_matrix

__all__ = ["BINS", "compute_reference"]

BINS = 10


def compute_reference(
    train: pd.DataFrame, kinds: Mapping[str, str], matrix: np.ndarray | None = None
) -> Reference:
    """The reference.json document for the training split.

    ``matrix`` is ``to_matrix(train, kinds)`` when the caller has it already (the one the
    model was fitted on): building it again for a million rows costs seconds.
    """
    if matrix is None:
        matrix = to_matrix(train, kinds)
    rows = len(train)
    features: dict[str, NumericReference | CategoricalReference] = {}
    for index, (name, kind) in enumerate(kinds.items()):
        column = matrix[:, index]
        if kind == NUMERIC:
            features[name] = _numeric(np.asarray(column, dtype=np.float64), rows)
        else:
            features[name] = _categorical(column, rows)
    return Reference(rows=rows, features=features)


def _numeric(values: np.ndarray, rows: int) -> NumericReference:
    present = values[~np.isnan(values)]
    missing = _share(rows - len(present), rows)
    if not len(present):
        return NumericReference(missing=missing)
    edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, BINS + 1)))
    if len(edges) == 1:
        constant = float(edges[0])
        return NumericReference(edges=[constant, constant], frequencies=[1.0], missing=missing)
    # np.histogram's bins are [a, b) except the last, [a, b]: every training value counts.
    counts, _ = np.histogram(present, bins=edges)
    return NumericReference(
        edges=[float(edge) for edge in edges],
        frequencies=[float(count) / len(present) for count in counts],
        missing=missing,
    )


def _categorical(values: np.ndarray, rows: int) -> CategoricalReference:
    present = [value for value in values.tolist() if value is not None]
    counts = Counter(present)
    total = len(present)
    return CategoricalReference(
        frequencies={str(value): count / total for value, count in counts.most_common()},
        missing=_share(rows - total, rows),
    )


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
