"""The process contracts (ctrain.api.contracts): exact wire, tolerant reading, typed writing."""

import json

import pytest
from pydantic import ValidationError

from ctrain.api.contracts import (
    BaselineResult,
    DriftReport,
    ModelMetadata,
    Reference,
    TrainingFailed,
    TrainingSucceeded,
    parse_trainer_result,
)
from ctrain.api.status import GateResult

pytestmark = pytest.mark.unit


def test_a_success_is_written_as_docs_contracts_md_shows_it() -> None:
    result = TrainingSucceeded(
        model="iris",
        version="3",
        artifact_uri="s3://models/ctrain/iris/versions/3/",
        task="classification",
        metrics={"accuracy": 0.97},
        key_metric="accuracy=0.9700",
        baseline=None,
        blessed=True,
        promoted=True,
        gates=[GateResult(metric="accuracy", min=0.9, value=0.97, passed=True)],
        decision="promoted",
        data_fingerprint="sha256:ab",
        rows=150,
    )
    assert list(result.to_wire()) == [
        "ok", "model", "version", "artifactUri", "task", "metrics", "keyMetric", "baseline",
        "blessed", "promoted", "gates", "decision", "dataFingerprint", "rows",
    ]  # fmt: skip
    assert result.to_wire()["baseline"] is None  # null, not absent: there was no champion
    assert result.to_wire()["gates"] == [
        {"metric": "accuracy", "min": 0.9, "value": 0.97, "passed": True}  # no "max": null
    ]


def test_a_not_comparable_champion_says_so_and_a_comparable_one_does_not() -> None:
    assert BaselineResult(version="2", metrics={"accuracy": 0.9}).to_wire() == {
        "version": "2",
        "metrics": {"accuracy": 0.9},
    }
    odd = BaselineResult(version="2", comparable=False, note="classes differ").to_wire()
    assert odd == {"version": "2", "metrics": {}, "comparable": False, "note": "classes differ"}


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('{"ok": true, "version": "3", "newerField": 1}', TrainingSucceeded),
        ('{"ok": true, "version": "3", "message": "too long; see the pod log"}', TrainingSucceeded),
        ('{"ok": false, "reason": "DatasetNotFound", "message": "no s3://b/k"}', TrainingFailed),
    ],
)
def test_results_are_read_by_their_ok(message: str, kind: type) -> None:
    assert isinstance(parse_trainer_result(message), kind)


@pytest.mark.parametrize(
    "message",
    [
        "Traceback (most recent call last): ...",
        "[1, 2]",
        '{"version": "3"}',  # no ok
        '{"ok": false, "message": "no reason"}',
        '{"ok": true, "metrics": {"accuracy": "high"}}',
    ],
)
def test_a_message_off_the_contract_does_not_parse(message: str) -> None:
    with pytest.raises(ValidationError):
        parse_trainer_result(message)


def test_metadata_keeps_fields_it_does_not_know() -> None:
    stored = {"model": "iris", "version": "3", "metrics": {"accuracy": 0.9}, "newerField": [1]}
    metadata = ModelMetadata.parse_json(json.dumps(stored))
    assert metadata.metrics == {"accuracy": 0.9}
    assert metadata.to_wire(exclude_none=True)["newerField"] == [1]


def test_reference_features_are_told_apart_by_kind() -> None:
    reference = Reference.parse(
        {
            "rows": 4,
            "features": {
                "x": {"kind": "numeric", "edges": [0.0, 1.0], "frequencies": [1.0]},
                "c": {"kind": "categorical", "frequencies": {"red": 1.0}, "missing": 0.5},
            },
        }
    )
    assert reference.to_wire()["features"] == {
        "x": {"kind": "numeric", "edges": [0.0, 1.0], "frequencies": [1.0], "missing": 0.0},
        "c": {"kind": "categorical", "frequencies": {"red": 1.0}, "missing": 0.5},
    }
    with pytest.raises(ValidationError):
        Reference.parse({"rows": 1, "features": {"x": {"kind": "ordinal"}}})


def test_a_drift_report_writes_its_time_like_metav1_time() -> None:
    report = DriftReport.parse_json(
        b'{"model": "iris", "version": "3", "samples": 10, "score": null, "features": {},'
        b' "reference": null, "computedAt": "2026-11-22T10:00:00.750+01:00"}'
    )
    assert report.to_wire()["computedAt"] == "2026-11-22T09:00:00Z"
