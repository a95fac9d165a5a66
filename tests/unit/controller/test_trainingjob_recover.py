"""A Running TrainingJob whose Job vanished: its result is recovered from the registry
(moto's S3 server over HTTP) by the TrainingJob's uid, or it failed with JobDeleted."""

import pytest
from fakes import Harness
from test_trainingjob_reconcile import NS, trainingjob

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.controller.config import OperatorConfig, StorageGrant
from ctrain.controller.kube import JOBS, PODS, TRAININGJOBS
from ctrain.controller.runtime.store import ObjectRef
from ctrain.controller.trainingjob.builders import TRAININGJOB_LABEL
from ctrain.registry import Registry

pytest_plugins = ["s3_fixtures"]
pytestmark = pytest.mark.unit


@pytest.fixture
def harness(moto_endpoint: str, s3_env: dict[str, str], bucket: str) -> Harness:
    config = OperatorConfig(
        s3_endpoint=moto_endpoint,
        default_bucket=bucket,
        s3_allow_http=True,  # moto on localhost
        s3_allowed=(StorageGrant(moto_endpoint, ("*",)),),
    )
    return Harness(config)


def running(harness: Harness, name: str = "iris") -> str:
    """A TrainingJob whose trainer pod runs; its uid."""
    harness.api.put(TRAININGJOBS, trainingjob(name))
    harness.drain()
    job = harness.api.find(JOBS, NS, f"{name}-train")
    job["status"] = {"active": 1, "startTime": "2026-03-01T10:00:31Z"}
    harness.api.put(JOBS, job)
    pod = {
        "metadata": {
            "name": f"{name}-train-x",
            "namespace": NS,
            "labels": {TRAININGJOB_LABEL: name},
            "ownerReferences": [{"uid": job["metadata"]["uid"]}],
        },
        "status": {"phase": "Running"},
    }
    harness.api.put(PODS, pod)
    harness.drain()
    body = harness.api.find(TRAININGJOBS, NS, name)
    assert body["status"]["phase"] == "Running"
    return str(body["metadata"]["uid"])


def publish_as(registry: Registry, uid: str, name: str = "iris") -> str:
    """What the trainer of TrainingJob `uid` leaves in the registry: claim, then publish."""
    version = registry.claim_for_job("iris", uid).version
    metadata = ModelMetadata(
        task="classification",
        primary_metric="accuracy",
        metrics={"accuracy": 0.93, "f1_macro": 0.9},
        blessed=True,
        decision="promoted: no champion to compare with",
        training_job={"name": name, "namespace": NS, "uid": uid},
    )
    registry.publish("iris", version, b"model", metadata, Reference(rows=150), owner=uid)
    return version


def vanish(harness: Harness, name: str = "iris") -> dict:
    harness.api.remove(JOBS, NS, f"{name}-train")
    harness.api.remove(PODS, NS, f"{name}-train-x")
    harness.drain()
    return harness.api.find(TRAININGJOBS, NS, name)["status"]


def condition(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_a_published_version_survives_its_job(harness: Harness, registry: Registry) -> None:
    uid = running(harness)
    version = publish_as(registry, uid)
    registry.promote("iris", version, expected=None, reason="first", by=f"TrainingJob {NS}/iris")
    status = vanish(harness)
    assert status["phase"] == "Succeeded"
    assert status["modelVersion"] == version
    assert status["artifactUri"] == registry.artifact_uri("iris", version)
    assert status["metrics"] == {"accuracy": 0.93, "f1_macro": 0.9}
    assert status["keyMetric"] == "accuracy=0.9300"
    assert status["promoted"] is True
    assert "recovered from the registry" in status["message"]
    assert condition(status, "Ready")["reason"] == "RecoveredFromRegistry"
    assert condition(status, "Trained")["status"] == "True"
    reasons = [event[1] for event in harness.api.events]
    assert "Succeeded" in reasons and "Failed" not in reasons


def test_promoted_only_by_a_move_of_this_trainingjob(harness: Harness, registry: Registry) -> None:
    uid = running(harness)
    version = publish_as(registry, uid)
    registry.promote("iris", version, expected=None, reason="by hand", by="ctrain models")
    status = vanish(harness)
    assert status["phase"] == "Succeeded"
    assert status["promoted"] is False


def test_a_claim_never_published_is_job_deleted(harness: Harness, registry: Registry) -> None:
    uid = running(harness)
    registry.claim_for_job("iris", uid)  # the trainer died before publishing
    status = vanish(harness)
    assert status["phase"] == "Failed"
    assert status["message"].startswith("JobDeleted")


def test_nothing_claimed_is_job_deleted(harness: Harness, registry: Registry) -> None:
    running(harness)
    publish_as(registry, "someone-else")  # another TrainingJob's version proves nothing
    status = vanish(harness)
    assert status["phase"] == "Failed"
    assert status["message"].startswith("JobDeleted")
    assert registry.job_version("iris", "someone-else") == "1"
    assert registry.list_versions("iris") == ["1"]  # the lookup claimed nothing


def test_an_unreadable_registry_concludes_nothing(
    harness: Harness, registry: Registry, s3_client: object, bucket: str
) -> None:
    uid = running(harness)
    publish_as(registry, uid)
    s3 = s3_client
    for key in s3.list_objects_v2(Bucket=bucket).get("Contents", []):  # type: ignore[attr-defined]
        s3.delete_object(Bucket=bucket, Key=key["Key"])  # type: ignore[attr-defined]
    s3.delete_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    status = vanish(harness)
    assert status["phase"] == "Running"  # retried with backoff, never Failed on no evidence


def test_a_job_gone_from_the_cache_is_confirmed_before_the_run_is_failed(harness: Harness) -> None:
    harness.api.put(TRAININGJOBS, trainingjob())
    harness.drain()
    job = harness.api.find(JOBS, NS, "iris-train")
    job["status"] = {"active": 1, "startTime": "2026-03-01T10:00:31Z"}
    harness.api.put(JOBS, job)
    pod = {
        "metadata": {
            "name": "iris-train-x",
            "namespace": NS,
            "labels": {TRAININGJOB_LABEL: "iris"},
            "ownerReferences": [{"uid": job["metadata"]["uid"]}],
        },
        "status": {"phase": "Running"},
    }
    harness.api.put(PODS, pod)
    harness.drain()
    assert harness.api.find(TRAININGJOBS, NS, "iris")["status"]["phase"] == "Running"
    # the cache lost the Job (a restart), but the apiserver still has it: no verdict
    harness.context.store(JOBS).remove(NS, "iris-train")
    harness.api.reset()
    harness.runtime.enqueue(ObjectRef("TrainingJob", NS, "iris"))
    harness.drain()
    assert ("get", "Job", "iris-train") in harness.api.calls
    assert harness.api.find(TRAININGJOBS, NS, "iris")["status"]["phase"] == "Running"
    # now it is really gone
    harness.api.remove(JOBS, NS, "iris-train")
    harness.drain()
    status = harness.api.find(TRAININGJOBS, NS, "iris")["status"]
    assert status["phase"] == "Failed"
    assert status["message"].startswith("JobDeleted")
