"""`ctrain train --log-format json`: one JSON object per stderr line, as the operator logs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctrain.trainer.errors import EXIT_INVALID_DATA

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

TrainCli = Callable[..., tuple[int, dict[str, Any], str]]


def spec(bucket: str) -> dict[str, Any]:
    return {
        "model": "iris",
        "dataset": {"uri": "builtin://iris"},
        "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
        "storage": {"bucket": bucket, "prefix": "ctrain"},
    }


def test_json_log_lines(run_train: TrainCli, bucket: str, tmp_path: Path) -> None:
    code, message, stderr = run_train(spec(bucket), tmp_path / "t", "--log-format", "json")
    assert code == 0, message
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert lines, "the trainer logged nothing"
    for line in lines:
        # kopf's JSON fields (the operator's logs), plus the logger's name.
        assert {"message", "timestamp", "severity", "logger"} <= set(line), line
        assert line["severity"] in {"debug", "info", "warn", "error", "fatal"}
        assert line["logger"].startswith("ctrain")
        assert "testing-secret" not in json.dumps(line)
    assert any(line["message"].startswith("loaded uri=builtin://iris") for line in lines)
    assert lines[0]["timestamp"].startswith("20")


def test_json_log_format_from_the_environment(
    run_train: TrainCli, bucket: str, tmp_path: Path
) -> None:
    code, _, stderr = run_train(spec(bucket), tmp_path / "t", env={"CTRAIN_LOG_FORMAT": "json"})
    assert code == 0
    assert all(json.loads(line)["message"] for line in stderr.splitlines() if line.strip())


def test_text_log_lines_by_default(run_train: TrainCli, bucket: str, tmp_path: Path) -> None:
    code, _, stderr = run_train(spec(bucket), tmp_path / "t")
    assert code == 0
    assert " INFO ctrain." in stderr
    assert not stderr.lstrip().startswith("{")


def test_a_failure_is_a_json_error_line(run_train: TrainCli, bucket: str, tmp_path: Path) -> None:
    broken = {**spec(bucket), "dataset": {"uri": f"s3://{bucket}/missing.csv", "target": "y"}}
    code, message, stderr = run_train(broken, tmp_path / "t", "--log-format", "json")
    assert code == EXIT_INVALID_DATA  # a missing dataset: the Job fails without retrying
    assert message["reason"] == "DatasetNotFound"
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any(line["severity"] in {"error", "warn"} for line in lines), lines
