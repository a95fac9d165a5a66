"""`ctrain evaluate-live`: each version's metric on its labelled predictions, the
termination message, performance.json (bounded, encrypted as asked), and the failures.

Storage is moto's S3 server over HTTP; log objects are written in the documented format
(feedback_fixtures.py); the versions are real models published to the registry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import skops.io
from click.testing import CliRunner
from feedback_fixtures import iris_row, log_table, put_labels, put_log
from serving_fixtures import iris_classifier

from ctrain.api import Metric
from ctrain.api.contracts import ModelMetadata, Reference, parse_performance_result
from ctrain.cli import main
from ctrain.feedback import LABEL, PREDICTION, VERSION, read_history
from ctrain.registry import Layout, Registry
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.live import score_version

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]


def _publish(registry: Registry, *versions: str) -> None:
    model, metadata, reference, _ = iris_classifier()
    meta = {k: v for k, v in metadata.items() if k not in ("model", "version")}
    for version in versions:
        registry.publish(
            "iris",
            version,
            skops.io.dumps(model),
            ModelMetadata.parse(meta),
            Reference.parse(reference),
        )


def _run(bucket: str, tmp_path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    log = tmp_path / "termination"
    result = CliRunner().invoke(
        main,
        ["evaluate-live", "--model", "iris", "--bucket", bucket, "--prefix", "ctrain",
         "--window-seconds", "3600", "--termination-log", str(log), *extra],
        catch_exceptions=False,
    )  # fmt: skip
    message = json.loads(log.read_text())
    assert json.loads(result.stdout) == message
    return result.exit_code, message


def _traffic(s3: Any, bucket: str) -> None:
    """v1 served 10 rows (8 right), v2 served 4 rows in 2 requests of 2 (1 right), 1 unlabelled."""
    now = datetime.now(UTC) - timedelta(minutes=2)
    rows = [iris_row(f"a{i}", "1", now, "setosa") for i in range(10)]
    rows += [iris_row(f"b{i}", "2", now, "virginica", row=r) for i in range(2) for r in range(2)]
    put_log(s3, bucket, log_table(rows), day=now, name="pod-a-1")
    labels = [(f"a{i}", 0, "setosa" if i < 8 else "versicolor") for i in range(10)]
    labels += [("b0", 0, "virginica"), ("b0", 1, "setosa"), ("b1", 0, "setosa")]
    put_labels(s3, bucket, "batch-1.csv", pd.DataFrame(labels, columns=["id", "row", "species"]))


def test_each_version_is_scored_on_its_labelled_rows(
    s3_client: Any, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    _publish(registry, "1", "2")
    _traffic(s3_client, bucket)

    code, message = _run(bucket, tmp_path)

    assert code == 0, message
    result = parse_performance_result(json.dumps(message))
    assert result.ok and result.metric == "accuracy"
    assert (result.samples, result.labelled) == (14, 13)
    by_version = {v.version: v for v in result.versions}
    assert [v.version for v in result.versions] == ["2", "1"]  # newest first
    assert (by_version["1"].value, by_version["1"].labelled) == (0.8, 10)
    assert (by_version["2"].samples, by_version["2"].labelled) == (4, 3)
    assert by_version["2"].value == pytest.approx(1 / 3, abs=1e-6)
    history = read_history(s3_client, Layout(bucket, "ctrain"), "iris", "1")
    assert history is not None and history.latest is not None
    assert history.latest.value == 0.8 and "f1_macro" in history.latest.metrics


def test_history_is_bounded_and_written_with_the_asked_encryption(
    s3_client: Any, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    _publish(registry, "1")
    _traffic(s3_client, bucket)
    for _ in range(3):
        code, _message = _run(bucket, tmp_path, "--history-limit", "2", "--sse", "AES256")
        assert code == 0
    layout = Layout(bucket, "ctrain")
    history = read_history(s3_client, layout, "iris", "1")
    assert history is not None and len(history.history) == 2
    head = s3_client.head_object(Bucket=bucket, Key=layout.key("iris", "1", "performance.json"))
    assert head.get("ServerSideEncryption") == "AES256"


def test_no_labels_is_a_measurement_without_a_value(
    s3_client: Any, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    _publish(registry, "1")
    now = datetime.now(UTC) - timedelta(minutes=1)
    put_log(s3_client, bucket, log_table([iris_row("x", "1", now, "setosa")]), day=now, name="p")

    code, message = _run(bucket, tmp_path)

    assert code == 0
    assert message["labelled"] == 0
    assert message["versions"][0]["value"] is None


def test_a_metric_of_the_wrong_task_fails_as_invalid(
    s3_client: Any, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    _publish(registry, "1")
    _traffic(s3_client, bucket)

    code, message = _run(bucket, tmp_path, "--metric", "rmse")

    assert code == 10
    assert message == {"ok": False, "reason": "InvalidSpec", "message": message["message"]}
    assert "rmse" in message["message"] and "classification" in message["message"]


def test_a_model_without_versions_has_nothing_to_measure(bucket: str, tmp_path: Path) -> None:
    code, message = _run(bucket, tmp_path)
    assert code == 0
    assert (message["samples"], message["versions"], message["metric"]) == (0, [], None)


def test_storage_that_cannot_be_reached_is_a_storage_error(tmp_path: Path) -> None:
    code, message = _run("no-such-bucket-here", tmp_path)
    assert (code, message["ok"], message["reason"]) == (1, False, "StorageError")


def _version_rows(labels: list[str], predictions: list[str]) -> pd.DataFrame:
    return pd.DataFrame({VERSION: "1", LABEL: labels, PREDICTION: predictions})


def test_one_labelled_class_leaves_out_what_cannot_be_computed() -> None:
    _model, metadata, _reference, _x = iris_classifier()
    meta = ModelMetadata.parse({**metadata, "version": "1"})
    rows = _version_rows(["setosa"] * 3, ["setosa", "setosa", "virginica"])
    metric, score = score_version(rows, meta, Metric.ACCURACY)
    assert metric == Metric.ACCURACY
    assert score.metrics["accuracy"] == pytest.approx(2 / 3, abs=1e-6)
    assert score.used == 3


def test_probability_metrics_need_the_logged_probabilities() -> None:
    _model, metadata, _reference, _x = iris_classifier()
    meta = ModelMetadata.parse({**metadata, "version": "1"})
    with pytest.raises(TrainerError, match="probabilities"):
        score_version(_version_rows(["setosa"], ["setosa"]), meta, Metric.LOG_LOSS)


def test_regression_labels_that_are_not_numbers_are_left_out() -> None:
    meta = ModelMetadata.parse(
        {"model": "d", "version": "1", "task": "regression", "features": ["x"], "target": "y"}
    )
    rows = pd.DataFrame({VERSION: "1", LABEL: ["1.0", "oops", "3.0"], PREDICTION: [1.0, 2, 3]})
    metric, score = score_version(rows, meta, None)
    assert metric == Metric.R2
    assert score.used == 2
    assert score.metrics["mae"] == 0.0
