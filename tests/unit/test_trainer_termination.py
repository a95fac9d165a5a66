"""The termination message always fits the kubelet's 4096 bytes and stays valid JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctrain.api import Reason
from ctrain.trainer.termination import MAX_BYTES, encode, failure, write

pytestmark = pytest.mark.unit


def test_small_messages_are_unchanged() -> None:
    payload = failure(Reason.DATASET_NOT_FOUND, "dataset s3://b/k not found")
    assert json.loads(encode(payload.to_wire())) == {
        "ok": False,
        "reason": "DatasetNotFound",
        "message": "dataset s3://b/k not found",
    }


def test_long_messages_are_truncated_to_valid_json() -> None:
    message = "; ".join(f"column c{i}: 3 values above max 20.0 (é)" for i in range(500))
    data = encode(failure(Reason.DATA_VALIDATION_FAILED, message).to_wire())
    assert len(data) <= MAX_BYTES
    decoded = json.loads(data)
    assert decoded["reason"] == "DataValidationFailed"
    assert decoded["message"].startswith("column c0: 3 values above max 20.0")
    assert decoded["message"].endswith("(truncated)")


def test_many_gates_are_summarised() -> None:
    gates = [{"metric": "m" * 50, "min": 0.5, "value": 0.9, "passed": True} for _ in range(80)]
    payload = {"ok": True, "version": "3", "decision": "promoted", "gates": gates}
    decoded = json.loads(encode(payload))
    assert "gates" not in decoded
    assert decoded["gatesPassed"] is True
    assert decoded["version"] == "3"


def test_the_comparisons_numbers_survive_a_long_message() -> None:
    comparison = {
        "championVersion": "2", "holdoutRows": 30, "championSeenRows": 0, "excludedRows": 0,
        "challenger": {"accuracy": 0.97}, "champion": {"accuracy": 0.93}, "delta": 0.04,
        "confidenceInterval": [-0.02, 0.1], "pValue": 0.21, "test": "McNemar",
        "verdict": "NotBetter", "reason": "x" * 3000,
    }  # fmt: skip
    gates = [{"metric": "m" * 50, "min": 0.5, "value": 0.9, "passed": True} for _ in range(20)]
    payload = {"ok": True, "version": "3", "decision": "kept " * 400, "gates": gates,
               "comparison": comparison}  # fmt: skip
    data = encode(payload)
    decoded = json.loads(data)
    assert len(data) <= MAX_BYTES and decoded["decision"].startswith("kept kept")
    assert decoded["comparison"] == {k: v for k, v in comparison.items() if k != "reason"}


def test_write_reports_an_unwritable_path(tmp_path: Path) -> None:
    target = tmp_path / "termination-log"
    assert write(target, {"ok": True}) is True
    assert json.loads(target.read_text()) == {"ok": True}
    assert write(tmp_path / "missing" / "dir" / "log", {"ok": True}) is False
