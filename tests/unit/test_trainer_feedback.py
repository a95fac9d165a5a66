"""`ctrain train` with `dataset.feedback`: labelled production rows appended to (or
replacing) the data set, counted in metadata.json, covered by the fingerprint and split
by content like every row; against moto's S3 server over HTTP, with logs in the
documented format (feedback_fixtures.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from feedback_fixtures import iris_row, log_table, put_labels, put_log

from ctrain.registry import Registry
from ctrain.storage import S3Client

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

TrainCli = Callable[..., tuple[int, dict[str, Any], str]]
LOGREG = "sklearn.linear_model.LogisticRegression"


def _spec(bucket: str, **feedback: Any) -> dict[str, Any]:
    return {
        "model": "iris",
        "dataset": {
            "uri": "builtin://iris",
            "feedback": {"enabled": True, "windowSeconds": 3600, **feedback},
        },
        "estimator": {"type": LOGREG, "params": {"max_iter": 300}},
        "evaluation": {"testSize": 0.25, "seed": 7, "baseline": "none"},
        "storage": {"bucket": bucket, "prefix": "ctrain"},
    }


def _production(s3: S3Client, bucket: str, count: int, *, labelled: int) -> None:
    """`count` logged rows (every one "setosa"-looking), the first `labelled` of them
    labelled "virginica": the meaning of the inputs changed."""
    now = datetime.now(UTC) - timedelta(minutes=2)
    rows = [iris_row(f"r{i}", "1", now, "setosa", x=1.0 + i / 100) for i in range(count)]
    put_log(s3, bucket, log_table(rows), day=now, name="pod-a-1")
    labels = pd.DataFrame({"id": [f"r{i}" for i in range(labelled)], "target": "virginica"})
    put_labels(s3, bucket, "day-1.csv", labels)


def test_append_adds_the_labelled_rows_and_changes_the_fingerprint(
    run_train: TrainCli, s3_client: S3Client, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    code, base, _ = run_train(_spec(bucket, enabled=False), tmp_path / "t0")
    assert code == 0, base
    _production(s3_client, bucket, 60, labelled=50)

    code, message, stderr = run_train(_spec(bucket), tmp_path / "t1")

    assert code == 0, (message, stderr)
    assert message["rows"] == 150 + 50
    assert message["dataFingerprint"] != base["dataFingerprint"]
    metadata = registry.metadata("iris", message["version"])
    production = metadata.dataset.production
    assert production is not None
    assert (production.mode, production.base_rows, production.production_rows) == (
        "Append",
        150,
        50,
    )
    assert (production.labelled, production.samples) == (50, 60)
    # The production rows are split by content like the others: some are held out.
    assert metadata.split is not None and metadata.split.method == "contentHash"

    # The same labels give the same data: the fingerprint is reproducible.
    code, again, _ = run_train(_spec(bucket), tmp_path / "t2")
    assert again["dataFingerprint"] == message["dataFingerprint"]


def test_replace_trains_on_the_production_rows_alone(
    run_train: TrainCli, s3_client: S3Client, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    _production(s3_client, bucket, 40, labelled=40)
    put_labels(
        s3_client,
        bucket,
        "day-2.csv",
        pd.DataFrame({"id": [f"r{i}" for i in range(20)], "target": "setosa"}),
    )  # a correction of half of them: the newest label wins

    code, message, stderr = run_train(_spec(bucket, mode="Replace"), tmp_path / "t")

    assert code == 0, (message, stderr)
    assert message["rows"] == 40
    production = registry.metadata("iris", message["version"]).dataset.production
    assert production is not None and production.base_rows == 0


def test_replace_without_labelled_rows_fails_as_invalid_data(
    run_train: TrainCli, bucket: str, tmp_path: Path
) -> None:
    code, message, _ = run_train(_spec(bucket, mode="Replace"), tmp_path / "t")
    assert (code, message["reason"]) == (11, "DataValidationFailed")
    assert "no labelled production rows" in message["message"]


def test_a_feature_left_out_of_the_log_fails_the_run_as_invalid(
    run_train: TrainCli, s3_client: S3Client, bucket: str, tmp_path: Path
) -> None:
    now = datetime.now(UTC) - timedelta(minutes=2)
    rows = [iris_row(f"r{i}", "1", now, "setosa") for i in range(5)]
    features = ["sepal_length", "sepal_width", "petal_length"]  # petal_width excluded
    table = log_table(
        [{k: v for k, v in r.items() if k != "petal_width"} for r in rows], features=features
    )
    put_log(s3_client, bucket, table, day=now, name="pod-a-1")
    put_labels(s3_client, bucket, "l.csv", pd.DataFrame({"id": ["r0"], "target": ["setosa"]}))

    code, message, _ = run_train(_spec(bucket), tmp_path / "t")

    assert (code, message["reason"]) == (10, "InvalidSpec")
    assert "petal_width" in message["message"]
