"""Hostile specs against the real operator: what a namespace user must not get back."""

import json

import pytest
from kubernetes import client

from ctrain_dev.sandbox.sandbox import S3_SECRET_KEY
from kubehelpers import apply, events_for, wait_for, wait_phase

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
