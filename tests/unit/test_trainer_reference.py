"""reference.json: quantile bins and category shares of the training split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctrain.trainer.reference import compute_reference

pytestmark = pytest.mark.unit


def test_numeric_features_get_ten_quantile_bins() -> None:
    frame = pd.DataFrame({"x": np.arange(100, dtype=float)})
    reference = compute_reference(frame, {"x": "numeric"}).to_wire()
    stats = reference["features"]["x"]
    assert reference["rows"] == 100
    assert stats["kind"] == "numeric"
    assert len(stats["edges"]) == 11
    assert stats["edges"][0] == 0.0 and stats["edges"][-1] == 99.0
    assert stats["frequencies"] == pytest.approx([0.1] * 10)
    assert stats["missing"] == 0.0


def test_ties_collapse_bins_and_frequencies_still_sum_to_one() -> None:
    values = [1.0] * 50 + [2.0] * 30 + [3.0] * 19 + [np.nan]
    reference = compute_reference(pd.DataFrame({"x": values}), {"x": "numeric"}).to_wire()
    stats = reference["features"]["x"]
    assert stats["edges"] == [1.0, 2.0, 3.0]
    assert stats["frequencies"] == pytest.approx([50 / 99, 49 / 99])
    assert sum(stats["frequencies"]) == pytest.approx(1.0)
    assert stats["missing"] == pytest.approx(0.01)


def test_constant_and_empty_numeric_columns() -> None:
    frame = pd.DataFrame({"c": [5.0, 5.0], "e": [np.nan, np.nan]})
    features = compute_reference(frame, {"c": "numeric", "e": "numeric"}).to_wire()["features"]
    assert (features["c"]["edges"], features["c"]["frequencies"]) == ([5.0, 5.0], [1.0])
    assert (features["e"]["edges"], features["e"]["frequencies"]) == ([], [])
    assert features["e"]["missing"] == 1.0


def test_categorical_features_get_shares_as_the_server_sees_them() -> None:
    frame = pd.DataFrame({"color": ["red", "blue", "red", None], "code": [1.0, 2.0, 1.0, 1.0]})
    features = compute_reference(frame, {"color": "categorical", "code": "categorical"}).to_wire()[
        "features"
    ]
    assert features["color"] == {
        "kind": "categorical",
        "frequencies": {"red": pytest.approx(2 / 3), "blue": pytest.approx(1 / 3)},
        "missing": 0.25,
    }
    assert features["code"]["frequencies"] == {"1": 0.75, "2": 0.25}  # "1", as clients send it
