"""`spec.pod` on the real trainer pod: scheduled by the real scheduler onto the node it
selects, with its tolerations, affinity, priority, ServiceAccount, pull secrets, labels
and annotations; ctrain's own keys refused by the apiserver (CEL)."""

import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from kubehelpers import apply, kubectl, wait_for, wait_phase

pytestmark = pytest.mark.integration
PRIORITY_CLASS = "ctrain-test-batch"


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def priority_class(api_client) -> str:
    scheduling = client.SchedulingV1Api(api_client)
    try:
        scheduling.create_priority_class(
            {"metadata": {"name": PRIORITY_CLASS}, "value": 100, "description": "test"}
        )
    except ApiException as error:
        if error.status != 409:  # another test of this session made it
            raise
    return PRIORITY_CLASS


def trainingjob(name: str, pod: dict) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": f"iris-{uuid.uuid4().hex[:6]}",
            "dataset": {"uri": "builtin://iris"},
            "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
            "pod": pod,
        },
    }


def test_pod_controls_on_the_real_trainer_pod(sandbox, custom, core, ml_namespace, priority_class):
    core.create_namespaced_service_account(ml_namespace, {"metadata": {"name": "trainer"}})
    node = sandbox.node_name
    pod = {
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}
                            ]
                        }
                    ]
                }
            }
        },
        "serviceAccountName": "trainer",
        "imagePullSecrets": [{"name": "registry-pull"}],
        "priorityClassName": priority_class,
        "labels": {"team": "ml"},
        "annotations": {"example.com/owner": "ml-platform"},
    }
    apply(sandbox, ml_namespace, trainingjob("placed", pod))
    done = wait_phase(custom, "trainingjobs", ml_namespace, "placed", ("Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")

    [trainer] = wait_for(
        lambda: (
            core.list_namespaced_pod(
                ml_namespace, label_selector="ctrain.dev/trainingjob=placed"
            ).items
        ),
        timeout=30,
        what="the trainer pod",
    )
    assert trainer.spec.node_name == node  # the real scheduler placed it as selected
    assert trainer.spec.node_selector == {"kubernetes.io/hostname": node}
    # (admission adds the not-ready/unreachable tolerations beside it)
    assert ("dedicated", "ml") in [(t.key, t.value) for t in trainer.spec.tolerations or []]
    terms = trainer.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    assert terms.node_selector_terms[0].match_expressions[0].key == "kubernetes.io/os"
    assert trainer.spec.service_account_name == "trainer"
    assert trainer.spec.automount_service_account_token is False
    assert [s.name for s in trainer.spec.image_pull_secrets] == ["registry-pull"]
    assert trainer.spec.priority_class_name == priority_class and trainer.spec.priority == 100
    assert trainer.metadata.labels["team"] == "ml"
    assert trainer.metadata.labels["app.kubernetes.io/managed-by"] == "ctrain"
    assert trainer.metadata.annotations["example.com/owner"] == "ml-platform"
    requests = trainer.spec.containers[0].resources.requests
    assert requests == {"cpu": "100m", "memory": "128Mi"}


@pytest.mark.parametrize("field", ["labels", "annotations"])
def test_ctrain_keys_are_refused(sandbox, ml_namespace, field):
    manifest = trainingjob("sneaky", {field: {"ctrain.dev/trainingjob": "other"}})
    refused = kubectl(
        sandbox, "apply", "-n", ml_namespace, "-f", "-", stdin=yaml.safe_dump(manifest), check=False
    )
    assert refused.returncode != 0
    assert "ctrain's own" in refused.stderr and f"spec.pod.{field}" in refused.stderr
