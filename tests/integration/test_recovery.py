"""A TrainingJob whose Job vanished while the operator was down keeps its published model:
the real operator, killed and restarted, recovers the result from the registry (moto's S3
server over HTTP) by the TrainingJob's uid instead of failing it."""

import pytest
from kubernetes import client
from test_trainingjob import PLURAL, trainingjob, unique_model

from kubehelpers import apply, get, reasons_until, wait_for, wait_phase

pytestmark = pytest.mark.integration


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def test_a_job_deleted_while_the_operator_was_down_recovers_from_the_registry(
    sandbox, custom, core, batch, operator, ml_namespace
):
    model = unique_model()
    apply(sandbox, ml_namespace, trainingjob("lost-job", model))
    wait_phase(custom, PLURAL, ml_namespace, "lost-job", ("Running", "Succeeded", "Failed"))
    operator.kill()
    try:
        done = wait_for(
            lambda: batch.read_namespaced_job("lost-job-train", ml_namespace).status.succeeded,
            timeout=240,
            what="the Job completed while the operator was down",
        )
        assert done == 1
        running = get(custom, PLURAL, ml_namespace, "lost-job")["status"]
        assert running["phase"] == "Running", "the operator saw the result: nothing to recover"
        batch.delete_namespaced_job("lost-job-train", ml_namespace, propagation_policy="Foreground")
        wait_for(
            lambda: not batch.list_namespaced_job(ml_namespace).items,
            what="the Job deleted",
        )
    finally:
        operator.start()
    status = wait_phase(custom, PLURAL, ml_namespace, "lost-job", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["modelVersion"] == "1"
    assert status["artifactUri"] == f"s3://models/ctrain/{model}/versions/1/"
    assert status["promoted"] is True  # the first version moved the champion, by this run
    assert status["keyMetric"].startswith("accuracy=")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "RecoveredFromRegistry"
    assert "recovered from the registry" in status["message"]
    assert not batch.list_namespaced_job(ml_namespace).items  # no second Job was made
    reasons = reasons_until(core, ml_namespace, "lost-job", "Succeeded")
    assert "Succeeded" in reasons and "Failed" not in reasons
