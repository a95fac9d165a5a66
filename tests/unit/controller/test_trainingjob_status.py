"""The TrainingJob status computed from its Job and pods (pure)."""

import json

import pytest

from ctrain.api import TrainingJobStatus
from ctrain.controller.runtime.status import serialise
from ctrain.controller.trainingjob.status import compute_status, invalid_spec_status

pytestmark = pytest.mark.unit


def pod(phase: str, message: str | None = None, exit_code: int = 0, created: str = "t1") -> dict:
    state: dict = {"running": {}} if phase == "Running" else {}
    if phase in ("Succeeded", "Failed"):
        state = {"terminated": {"exitCode": exit_code, "message": message}}
    return {
        "metadata": {"name": f"p-{created}", "creationTimestamp": created},
        "status": {"phase": phase, "containerStatuses": [{"name": "trainer", "state": state}]},
    }


def job(active: int = 0, condition: str | None = None, reason: str = "") -> dict:
    conditions = (
        [
            {
                "type": condition,
                "status": "True",
                "reason": reason,
                "lastTransitionTime": "2026-11-22T12:01:00Z",
            }
        ]
        if condition
        else []
    )
    return {
        "metadata": {"name": "j", "uid": "u"},
        "status": {
            "active": active,
            "startTime": "2026-11-22T12:00:00Z",
            "completionTime": "2026-11-22T12:01:00Z",
            "conditions": conditions,
        },
    }


def compute(old: dict, the_job, pods) -> dict:
    """The status as it is written: built on the model, serialised like the runtime does."""
    status = compute_status(
        TrainingJobStatus.parse(old),
        the_job,
        pods,
        generation=1,
        job_name="tj-train",
        active_deadline_seconds=60,
    )
    return serialise(status)


SUMMARY = {
    "ok": True,
    "model": "iris",
    "version": "3",
    "artifactUri": "s3://m/c/iris/versions/3/",
    "metrics": {"accuracy": 0.97, "f1_macro": 0.96},
    "keyMetric": "accuracy=0.9700",
    "blessed": True,
    "promoted": True,
    "baseline": {"version": "2", "metrics": {"accuracy": 0.9}},
    "gates": [],
    "decision": "promoted: accuracy 0.97 beats champion v2 0.90",
    "dataFingerprint": "sha256:ab",
    "rows": 150,
}


def test_running_then_finished_pod_never_steps_back_to_pending():
    running = compute({}, job(active=1), [pod("Running")])
    assert running["phase"] == "Running"
    # The pod finished; the Job controller has not yet marked the Job complete.
    finishing = compute(running, job(active=1), [pod("Succeeded", json.dumps(SUMMARY))])
    assert finishing["phase"] == "Running"
    finishing = compute(finishing, job(active=0), [pod("Succeeded", json.dumps(SUMMARY))])
    assert finishing["phase"] == "Running"


def test_success_copies_the_trainer_summary():
    status = compute({}, job(condition="Complete"), [pod("Succeeded", json.dumps(SUMMARY))])
    assert status["phase"] == "Succeeded"
    assert (status["modelVersion"], status["keyMetric"]) == ("3", "accuracy=0.9700")
    assert status["baseline"]["version"] == "2"
    kinds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert kinds["Blessed"] == ("True", "GatesPassed")
    assert kinds["Ready"] == ("True", "Promoted")


def test_success_copies_the_comparison_and_the_trainers_reasons():
    comparison = {
        "championVersion": "2",
        "holdoutRows": 28,
        "championSeenRows": 0,
        "excludedRows": 2,
        "challenger": {"accuracy": 0.97},
        "champion": {"accuracy": 0.93},
        "delta": 0.04,
        "confidenceInterval": [-0.02, 0.1],
        "pValue": 0.21,
        "test": "McNemar",
        "significant": False,
        "verdict": "NotBetter",
        "reason": "delta +0.0400 over champion v2 is not significant (p 0.21, alpha 0.05)",
    }
    summary = {
        **SUMMARY,
        "blessed": False,
        "promoted": False,
        "comparison": comparison,
        "blessedReason": "NotSignificant",
        "promotionReason": "NotPromoted",
    }
    status = compute({}, job(condition="Complete"), [pod("Succeeded", json.dumps(summary))])
    assert status["comparison"] == comparison
    kinds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert kinds["Blessed"] == ("False", "NotSignificant")
    assert kinds["Ready"] == ("True", "NotPromoted")
    moved = {**summary, "blessed": True, "blessedReason": "GatesPassed",
             "promotionReason": "ChampionMoved"}  # fmt: skip
    status = compute({}, job(condition="Complete"), [pod("Succeeded", json.dumps(moved))])
    kinds = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    assert kinds["Ready"] == ("True", "ChampionMoved")


def test_the_job_fails_at_once_on_deterministic_exit_codes():
    from ctrain.api import TrainingJobSpec
    from ctrain.controller.config import OperatorConfig
    from ctrain.controller.trainingjob.builders import build_job

    body = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "tj", "namespace": "ns", "uid": "u-1"},
    }
    spec = TrainingJobSpec.parse(
        {
            "model": "iris",
            "dataset": {"uri": "builtin://iris"},
            "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
        }
    )
    policy = build_job(body, spec, OperatorConfig.from_env({}))["spec"]["podFailurePolicy"]
    assert policy["rules"][0] == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [10, 11, 12]},
    }
    assert policy["rules"][1] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget"}],
    }


def test_final_status_is_never_recomputed():
    done = compute({}, job(condition="Complete"), [pod("Succeeded", json.dumps(SUMMARY))])
    assert compute(done, None, []) == done  # the Job went away with its TTL


@pytest.mark.parametrize(
    ("message", "exit_code", "job_reason", "reason", "fragment"),
    [
        (
            json.dumps(
                {
                    "ok": False,
                    "reason": "DataValidationFailed",
                    "message": "column x: 3 values above max 2",
                }
            ),
            1,
            "BackoffLimitExceeded",
            "DataValidationFailed",
            "column x",
        ),
        ("Traceback: boom", 137, "BackoffLimitExceeded", "TrainingFailed", "exit code 137"),
        (None, None, "DeadlineExceeded", "DeadlineExceeded", "activeDeadlineSeconds (60s)"),
    ],
)
def test_failures_name_their_cause(message, exit_code, job_reason, reason, fragment):
    pods = [pod("Failed", message, exit_code)] if exit_code is not None else []
    status = compute({}, job(condition="Failed", reason=job_reason), pods)
    assert status["phase"] == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == reason
    assert fragment in status["message"]
    validated = [c for c in status["conditions"] if c["type"] == "DataValidated"]
    if reason == "DataValidationFailed":
        assert validated[0]["status"] == "False"


def test_invalid_spec_names_the_field():
    status = serialise(
        invalid_spec_status(TrainingJobStatus(), 2, "spec.dataset.uri: String should match pattern")
    )
    assert status["phase"] == "Failed"
    assert status["observedGeneration"] == 2
    assert "spec.dataset.uri" in status["message"]
