"""One slow or broken object never blocks the others, and a failing one backs off alone.

The real operator process in the sandbox. Twelve ModelDeployments point at a storage
endpoint that accepts connections and never answers; a TrainingJob and a ModelDeployment
applied right after them still get their Job and their status within 10 s. A
ModelDeployment whose Service the apiserver keeps refusing is retried after growing
delays (its log says so), not in a hot loop, while another one is served as usual.
"""

import itertools
import re
import time
import uuid

import pytest
from kubernetes import client

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.registry import Registry
from ctrain_dev.sandbox import operator as sandbox_operator
from kubehelpers import apply, get, make_namespace, wait_for

pytestmark = pytest.mark.integration
GENEROUS = 10.0  # seconds; the bound for an object that nothing should delay


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def champion_model(s3) -> str:
    """A model with a champion in the sandbox's registry (a stand-in artifact: the
    ModelDeployments here have no replicas, nothing loads it)."""
    model = f"iso-{uuid.uuid4().hex[:6]}"
    registry = Registry(s3, "models", "ctrain")
    version = registry.reserve_version(model)
    registry.publish(model, version, b"stand-in", ModelMetadata(), Reference(rows=1))
    registry.set_champion(model, version, "test")
    return model


def model_deployment(name: str, model: str, **spec) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": model, "replicas": 0, **spec},
    }


def trainingjob(name: str, model: str) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": {"uri": "builtin://iris"},
            "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
        },
    }


def test_silent_storage_delays_neither_a_new_job_nor_another_status(
    sandbox, custom, batch, s3, silent_endpoint, ml_namespace
):
    silent = {"bucket": "models", "endpoint": silent_endpoint}
    for index in range(12):
        body = model_deployment(f"stuck-{index}", f"stuck-{index}", storage=silent)
        apply(sandbox, ml_namespace, body)
    model = champion_model(s3)
    applied = time.monotonic()
    apply(sandbox, ml_namespace, trainingjob("fresh", model))
    apply(sandbox, ml_namespace, model_deployment("healthy", model))

    fresh = "ctrain.dev/trainingjob=fresh"
    wait_for(
        lambda: batch.list_namespaced_job(ml_namespace, label_selector=fresh).items,
        timeout=GENEROUS,
        interval=0.2,
        what="the fresh TrainingJob's Job",
    )
    status = wait_for(
        lambda: get(custom, "modeldeployments", ml_namespace, "healthy").get("status"),
        timeout=GENEROUS - (time.monotonic() - applied),
        interval=0.2,
        what="the healthy ModelDeployment's status",
    )
    assert status["phase"] in ("Progressing", "Available"), status
    # and the stuck ones say why, once their endpoint timed out
    stuck = wait_for(
        lambda: get(custom, "modeldeployments", ml_namespace, "stuck-0").get("status"),
        timeout=60,
        what="the stuck ModelDeployment's status",
    )
    assert "did not answer" in stuck["message"], stuck["message"]


RETRY = re.compile(
    r"ModelDeployment (\S+) failed(?: again \((\d+) in a row;)?[;,]? retrying in ([\d.]+)s"
)


def retries(log: str, key: str) -> list[float]:
    return [float(m.group(3)) for m in RETRY.finditer(log) if m.group(1) == key]


def test_a_failing_object_backs_off_alone(
    sandbox, core, custom, s3, operator, ml_namespace, request
):
    # the apiserver refuses every Service in this namespace: the object's pass fails
    quota = {"metadata": {"name": "no-services"}, "spec": {"hard": {"services": "0"}}}
    core.create_namespaced_resource_quota(ml_namespace, quota)
    other = make_namespace(core, f"t-{request.node.name}-ok")
    sandbox_operator.credentials_secret(sandbox, other)
    try:
        model = champion_model(s3)
        apply(sandbox, ml_namespace, model_deployment("blocked", model))
        apply(sandbox, other, model_deployment("fine", model))
        status = wait_for(
            lambda: get(custom, "modeldeployments", other, "fine").get("status"),
            timeout=GENEROUS,
            what="the other ModelDeployment's status",
        )
        assert status["phase"] in ("Progressing", "Available"), status
        key = f"{ml_namespace}/blocked"
        delays = wait_for(
            lambda: (found := retries(operator.log(), key)) and len(found) >= 4 and found,
            timeout=60,
            interval=1,
            what="four retries of the blocked ModelDeployment",
        )
        # growing delays (doubling, +-20 % jitter), not a hot loop
        assert all(later > earlier for earlier, later in itertools.pairwise(delays))
        assert delays[0] <= 1.2 and delays[3] >= 6.4 * 0.99, delays
        time.sleep(5)
        assert len(retries(operator.log(), key)) <= 6  # ~1+2+4+8 s apart: no more than that
    finally:
        core.delete_namespace(other)
