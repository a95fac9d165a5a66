"""The TrainingJob reconciler's API calls, pass by pass, against the recording fake."""

import json

import pytest
from fakes import Harness, invalid

from ctrain.controller.kube import JOBS, PODS, TRAININGJOBS
from ctrain.controller.trainingjob.builders import TRAININGJOB_LABEL

pytestmark = pytest.mark.unit
NS = "ml"


def trainingjob(name: str = "iris", **spec: object) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "model": "iris",
            "dataset": {"uri": "builtin://iris"},
            "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
            **spec,
        },
    }


def finish(harness: Harness, name: str, summary: dict, *, ok: bool = True) -> None:
    """What the Job controller and the kubelet do once the trainer exits."""
    job = harness.api.find(JOBS, NS, f"{name}-train")
    assert job is not None
    pod = {
        "metadata": {
            "name": f"{name}-train-abcde",
            "namespace": NS,
            "labels": {TRAININGJOB_LABEL: name},
            "ownerReferences": [{"uid": job["metadata"]["uid"], "kind": "Job"}],
        },
        "status": {
            "phase": "Succeeded" if ok else "Failed",
            "containerStatuses": [
                {
                    "name": "trainer",
                    "state": {"terminated": {"exitCode": 0, "message": json.dumps(summary)}},
                }
            ],
        },
    }
    harness.api.put(PODS, pod)
    condition = "Complete" if ok else "Failed"
    job["status"] = {
        "startTime": "2026-03-01T10:00:31Z",
        "completionTime": "2026-03-01T10:01:00Z",
        "conditions": [
            {
                "type": condition,
                "status": "True",
                "reason": "BackoffLimitExceeded" if not ok else "",
                "lastTransitionTime": "2026-03-01T10:01:00Z",
            }
        ],
    }
    harness.api.put(JOBS, job)


SUMMARY = {
    "ok": True,
    "model": "iris",
    "version": "1",
    "artifactUri": "s3://models/ctrain/iris/versions/1/",
    "metrics": {"accuracy": 0.97},
    "keyMetric": "accuracy=0.9700",
    "blessed": True,
    "promoted": True,
    "gates": [],
    "decision": "promoted: no champion yet",
    "dataFingerprint": "sha256:ab",
    "rows": 150,
}


def test_a_new_trainingjob_gets_one_job_one_status_and_one_event() -> None:
    harness = Harness()
    harness.api.put(TRAININGJOBS, trainingjob())
    harness.drain()
    assert harness.api.writes() == [
        ("create", "Job", "iris-train"),
        ("patch_status", "TrainingJob", "iris"),
        ("event", "Pending"),
    ]
    status = harness.api.find(TRAININGJOBS, NS, "iris")["status"]
    assert (status["phase"], status["jobName"]) == ("Pending", "iris-train")


def test_events_of_its_own_writes_cost_no_calls() -> None:
    harness = Harness()
    harness.api.put(TRAININGJOBS, trainingjob())
    harness.drain()
    harness.api.reset()
    # the status write and the Job came back through the watch: passes ran, nothing changed
    harness.api.put(TRAININGJOBS, harness.api.find(TRAININGJOBS, NS, "iris"))
    assert harness.drain() == 1
    assert harness.api.calls == []


def test_a_finished_job_is_read_fresh_and_the_outcome_is_final() -> None:
    harness = Harness()
    harness.api.put(TRAININGJOBS, trainingjob())
    harness.drain()
    harness.api.reset()
    finish(harness, "iris", SUMMARY)
    harness.drain()
    # the pods of a concluded Job are listed live, not taken from the cache
    assert harness.api.calls[0] == ("list", "Pod", f"{TRAININGJOB_LABEL}=iris")
    assert ("patch_status", "TrainingJob", "iris") in harness.api.calls
    reasons = [call[1] for call in harness.api.calls if call[0] == "event"]
    assert reasons[0] == "Succeeded" and "TrainingSucceeded" in reasons
    status = harness.api.find(TRAININGJOBS, NS, "iris")["status"]
    assert status["phase"] == "Succeeded" and status["modelVersion"] == "1"
    harness.api.reset()
    harness.api.put(TRAININGJOBS, harness.api.find(TRAININGJOBS, NS, "iris"))
    harness.drain()
    assert harness.api.calls == []  # a finished TrainingJob is never looked at again
    assert harness.runtime.loops["TrainingJob"].queue.scheduled() == 0


def test_an_invalid_spec_is_a_status_not_a_retry_loop() -> None:
    harness = Harness()
    body = trainingjob()
    body["spec"]["estimator"] = {"type": "os.system"}
    harness.api.put(TRAININGJOBS, body)
    harness.drain()
    status = harness.api.find(TRAININGJOBS, NS, "iris")["status"]
    assert status["phase"] == "Failed"
    assert "spec.estimator.type" in status["message"]
    assert [c for c in harness.api.calls if c[0] == "create"] == []
    assert harness.runtime.loops["TrainingJob"].queue.scheduled() == 0  # not retried


def test_a_job_the_apiserver_refuses_fails_the_trainingjob_with_its_message() -> None:
    harness = Harness()
    harness.api.refuse[("create", "Job")] = invalid("spec.template.spec.containers[0].resources")
    harness.api.put(TRAININGJOBS, trainingjob())
    harness.drain()
    status = harness.api.find(TRAININGJOBS, NS, "iris")["status"]
    assert status["phase"] == "Failed"
    assert "resources" in status["message"]
    assert harness.runtime.loops["TrainingJob"].queue.scheduled() == 0


def test_a_plain_http_endpoint_is_forbidden_unless_allowed() -> None:
    from ctrain.controller.config import OperatorConfig

    storage = {"bucket": "models", "endpoint": "http://minio.example:9000"}
    harness = Harness()
    harness.api.put(TRAININGJOBS, trainingjob(storage=storage))
    harness.drain()
    assert ("create", "Job", "iris-train") not in harness.api.writes()
    status = harness.api.find(TRAININGJOBS, NS, "iris")["status"]
    assert status["phase"] == "Failed"
    assert status["message"].startswith("StorageForbidden: the S3 endpoint")
    allowed = Harness(OperatorConfig(s3_allow_http=True))
    allowed.api.put(TRAININGJOBS, trainingjob(storage=storage))
    allowed.drain()
    assert ("create", "Job", "iris-train") in allowed.api.writes()
