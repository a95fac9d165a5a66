"""Hostile specs against the real operator: what a namespace user must not get back."""

import json
import socket

import pytest
import yaml
from kubernetes import client

from ctrain_dev.sandbox.sandbox import S3_SECRET_KEY
from kubehelpers import apply, events_for, get, kubectl, settle, wait_for, wait_phase

pytestmark = pytest.mark.integration
PLURAL = "trainingjobs"


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def test_secret_references_in_params_are_never_expanded(
    sandbox, custom, core, operator, ml_namespace
):
    """`$(AWS_SECRET_ACCESS_KEY)` in the spec reaches the trainer as written: the key from
    the Secret never appears in status or Events, and a flood of unknown names is cut short."""
    params = {"$(AWS_SECRET_ACCESS_KEY)": 1, "$(AWS_ACCESS_KEY_ID)": 2}
    params.update({f"p{i:03d}_" + "x" * 200: i for i in range(50)})
    apply(
        sandbox,
        ml_namespace,
        {
            "apiVersion": "ctrain.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "exfiltrate"},
            "spec": {
                "model": "exfiltrate",
                "dataset": {"uri": "builtin://iris"},
                "estimator": {"type": "sklearn.linear_model.LogisticRegression", "params": params},
                # Env values from the spec are escaped too.
                "storage": {"bucket": "models", "prefix": "x$(AWS_SECRET_ACCESS_KEY)"},
            },
        },
    )
    body = wait_phase(custom, PLURAL, ml_namespace, "exfiltrate", ("Succeeded", "Failed"))
    status = body["status"]
    assert status["phase"] == "Failed"
    assert status["message"].startswith("InvalidParams: unknown parameters")
    assert "$(AWS_SECRET_ACCESS_KEY)" in status["message"]
    assert "and 44 more" in status["message"]
    assert len(status["message"]) < 2048
    events = wait_for(
        lambda: [e for e in events_for(core, ml_namespace, "exfiltrate") if e[0] == "Failed"],
        what="the Failed Event",
    )
    events = events_for(core, ml_namespace, "exfiltrate")
    everything = json.dumps(status) + json.dumps(events)
    assert S3_SECRET_KEY not in everything
    assert "x" * 64 not in everything  # each name cut short


def _manifest(kind: str, name: str, spec: dict) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


TJ_SPEC = {
    "model": "admitted",
    "dataset": {"uri": "builtin://iris"},
    "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
}
MD_SPEC = {"model": "admitted"}


@pytest.mark.parametrize(
    ("kind", "name", "spec", "fragment"),
    [
        ("TrainingJob", "t" * 64, TJ_SPEC, "at most 63 characters"),
        ("ModelDeployment", "m" * 64, MD_SPEC, "DNS-1035"),
        ("ModelDeployment", "9lives", MD_SPEC, "DNS-1035"),
        ("ModelDeployment", "dotted.name", MD_SPEC, "DNS-1035"),
        ("TrainingJob", "typo", {**TJ_SPEC, "resources": {"limit": {"cpu": 1}}}, "limit"),
        ("TrainingJob", "badqty", {**TJ_SPEC, "resources": {"limits": {"cpu": "two"}}}, "cpu"),
        ("ModelDeployment", "typo", {**MD_SPEC, "resources": {"request": {}}}, "request"),
    ],
)
def test_apiserver_rejects_bad_names_and_resources(
    sandbox, ml_namespace, kind, name, spec, fragment
):
    """Rejected by `kubectl apply` (CEL on metadata.name, ResourceRequirements' schema)."""
    result = kubectl(
        sandbox,
        "apply",
        "-n",
        ml_namespace,
        "-f",
        "-",
        stdin=yaml.safe_dump(_manifest(kind, name, spec)),
        check=False,
    )
    assert result.returncode != 0, result.stdout
    assert fragment in result.stderr, result.stderr


def test_names_at_the_limit_and_real_resources_are_admitted_and_run(sandbox, custom, ml_namespace):
    """A 63-character TrainingJob with resources trains: every derived name and label fits."""
    name = "t" * 63
    spec = {**TJ_SPEC, "resources": {"requests": {"cpu": "100m", "memory": 256 * 2**20}}}
    apply(sandbox, ml_namespace, _manifest("TrainingJob", name, spec))
    body = wait_phase(custom, PLURAL, ml_namespace, name, ("Succeeded", "Failed"))
    assert body["status"]["phase"] == "Succeeded", body["status"].get("message")
    job = client.BatchV1Api(custom.api_client).read_namespaced_job(
        body["status"]["jobName"], ml_namespace
    )
    assert job.spec.template.spec.containers[0].resources.requests == {
        "cpu": "100m",
        "memory": str(256 * 2**20),
    }


def test_a_schedule_that_never_fires_is_a_status_reason(sandbox, custom, ml_namespace):
    loop = _manifest(
        "ContinuousTraining",
        "never",
        {"template": {"spec": TJ_SPEC}, "triggers": {"schedule": "0 0 30 2 *"}},
    )
    apply(sandbox, ml_namespace, loop)
    body = wait_for(
        lambda: (
            (b := get(custom, "continuoustrainings", ml_namespace, "never")).get("status") and b
        ),
        what="a status",
    )
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "never fires" in ready["message"]


def test_storage_outside_the_allowlist_is_forbidden_and_never_contacted(
    sandbox, custom, ml_namespace
):
    """A ModelDeployment pointing the operator at another endpoint: StorageForbidden in
    status, and that endpoint never sees a connection from the operator."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    spec = {
        "model": "elsewhere",
        "storage": {"bucket": "secrets", "endpoint": f"https://127.0.0.1:{port}"},
    }
    apply(sandbox, ml_namespace, _manifest("ModelDeployment", "elsewhere", spec))
    body = wait_for(
        lambda: (
            (b := get(custom, "modeldeployments", ml_namespace, "elsewhere")).get("status")
            and "StorageForbidden" in (b["status"].get("message") or "")
            and b
        ),
        what="StorageForbidden in the status",
    )
    assert "allowlist" in body["status"]["message"]
    settle(3)
    with pytest.raises(TimeoutError):
        listener.accept()
    listener.close()
