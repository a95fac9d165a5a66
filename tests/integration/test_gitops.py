"""GitOps hygiene: the operator never writes what a user's manifests own.

After reconciling, `kubectl diff` of the applied YAML is empty (only status changed);
children do not carry the Argo CD tracking label of their owner, so Argo CD never prunes
them; deleting a custom resource garbage-collects its children.
"""

import uuid

import pytest
import yaml
from kubernetes import client

from kubehelpers import kubectl, wait_for, wait_phase

pytestmark = pytest.mark.integration
TRACKING = "app.kubernetes.io/instance"


def manifests(model: str) -> str:
    labels = {TRACKING: "models-iris", "team": "ml"}
    annotations = {"argocd.argoproj.io/sync-wave": "1", "owner": "ml-team"}
    trainingjob = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "gitops-train", "labels": labels, "annotations": annotations},
        "spec": {
            "model": model,
            "dataset": {"uri": "builtin://iris"},
            "estimator": {
                "type": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 300},
            },
        },
    }
    deployment = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "gitops-serve", "labels": labels, "annotations": annotations},
        "spec": {"model": model, "replicas": 1},
    }
    return yaml.safe_dump_all([trainingjob, deployment])


def test_reconciled_objects_show_no_diff_and_children_are_not_tracked(
    sandbox, api_client, ml_namespace
):
    model = f"gitops-{uuid.uuid4().hex[:6]}"
    text = manifests(model)
    kubectl(sandbox, "apply", "-n", ml_namespace, "-f", "-", stdin=text)
    custom = client.CustomObjectsApi(api_client)
    trained = wait_phase(
        custom, "trainingjobs", ml_namespace, "gitops-train", ("Succeeded", "Failed")
    )
    assert trained["status"]["phase"] == "Succeeded"
    wait_phase(
        custom, "modeldeployments", ml_namespace, "gitops-serve", ("Available",), timeout=180
    )

    diff = kubectl(sandbox, "diff", "-n", ml_namespace, "-f", "-", stdin=text, check=False)
    assert diff.returncode == 0, diff.stdout  # 1 would mean the live objects drifted

    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    batch = client.BatchV1Api(api_client)
    children = [
        *batch.list_namespaced_job(ml_namespace).items,
        *apps.list_namespaced_deployment(ml_namespace).items,
        *core.list_namespaced_service(ml_namespace).items,
        *core.list_namespaced_pod(ml_namespace).items,
    ]
    assert len(children) >= 4
    for child in children:
        assert TRACKING not in (child.metadata.labels or {}), child.metadata.name
        annotations = child.metadata.annotations or {}
        assert not any(key.startswith("argocd.argoproj.io/") for key in annotations)

    kubectl(sandbox, "delete", "-n", ml_namespace, "-f", "-", stdin=text)
    wait_for(
        lambda: (
            not apps.list_namespaced_deployment(ml_namespace).items
            and not core.list_namespaced_service(ml_namespace).items
            and not batch.list_namespaced_job(ml_namespace).items
        ),
        timeout=60,
        what="children garbage-collected with their owners",
    )
