"""The Helm chart installed with helm into the sandbox: its operator pod trains a model.

The chart's operator runs as a pod under its own ServiceAccount (projected token,
in-cluster config), so a TrainingJob that succeeds proves its RBAC is enough; `kubectl auth
can-i` as that ServiceAccount proves it is not more than needed.
"""

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from ctrain_dev.sandbox import operator as sandbox_operator
from kubehelpers import apply, get, kubectl, make_namespace, wait_phase

pytestmark = pytest.mark.integration
CHART = Path(__file__).parents[2] / "charts" / "ctrain"
RELEASE = "ctrain"
ACCOUNT = "ctrain"  # the chart's ServiceAccount: <release>-<chart>, shortened when equal


def helm(sandbox, *args: str) -> subprocess.CompletedProcess[str]:
    binary = next(Path(d) / "helm" for d in sandbox.bin_dirs if (Path(d) / "helm").exists())
    return subprocess.run(
        [str(binary), f"--kubeconfig={sandbox.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def installed(sandbox, core, operator) -> Iterator[tuple[str, str]]:
    """The chart in its own namespace, watching one other namespace; the test's own
    operator process is stopped meanwhile, so only the chart's operator reconciles."""
    restricted = {"pod-security.kubernetes.io/enforce": "restricted"}
    system = make_namespace(core, "ctrain-system", restricted)
    watched = make_namespace(core, "ctrain-models", restricted)
    for namespace in (system, watched):
        sandbox_operator.credentials_secret(sandbox, namespace)
    operator.stop()
    result = helm(
        sandbox,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        system,
        "--wait",
        "--timeout",
        "180s",
        "--set",
        "crds.enabled=false",  # the session applied them already
        "--set",
        f"watchNamespaces={{{watched}}}",
        "--set",
        f"storage.endpoint={sandbox.s3_endpoint}",
        "--set",
        "storage.allowHttp=true",
        "--set",
        "image.tag=dev",
    )
    try:
        assert result.returncode == 0, result.stderr
        yield system, watched
    finally:
        helm(sandbox, "uninstall", RELEASE, "--namespace", system, "--wait")
        for namespace in (system, watched):
            core.delete_namespace(namespace)
        operator.start()


def can_i(sandbox, system: str, *args: str) -> bool:
    account = f"system:serviceaccount:{system}:{ACCOUNT}"
    result = kubectl(sandbox, "auth", "can-i", *args, f"--as={account}", check=False)
    return result.stdout.strip() == "yes"


def test_chart_operator_trains_a_model_with_least_privilege(sandbox, api_client, installed):
    system, watched = installed
    pods = client.CoreV1Api(api_client).list_namespaced_pod(system).items
    assert len(pods) == 1
    assert pods[0].spec.service_account_name == ACCOUNT
    assert all(c.ready for c in pods[0].status.container_statuses)

    model = f"chart-{watched[-6:]}"
    apply(
        sandbox,
        watched,
        {
            "apiVersion": "ctrain.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": {"name": "via-chart"},
            "spec": {
                "model": model,
                "dataset": {"uri": "builtin://iris"},
                "estimator": {
                    "type": "sklearn.linear_model.LogisticRegression",
                    "params": {"max_iter": 300},
                },
            },
        },
    )
    custom = client.CustomObjectsApi(api_client)
    status = wait_phase(custom, "trainingjobs", watched, "via-chart", ("Succeeded", "Failed"))
    assert status["status"]["phase"] == "Succeeded", status["status"].get("message")

    # Enough: what the operator does in its namespaces.
    for allowed in [
        ("create", "jobs.batch"),
        # `resource/status` would ask about an object named "status": name the subresource.
        ("patch", "trainingjobs.ctrain.dev", "--subresource=status"),
        ("create", "deployments.apps"),
        ("create", "services"),
        ("create", "events"),
        ("list", "pods"),
    ]:
        assert can_i(sandbox, system, *allowed, "-n", watched), allowed
    # Not more: no Secrets anywhere, no exec, nothing outside the watched namespace, no
    # cluster-wide access to namespaced resources, nothing in other API groups.
    for args in [
        ("get", "secrets", "-n", watched),
        ("list", "secrets", "--all-namespaces"),
        ("create", "pods/exec", "-n", watched),
        ("create", "jobs.batch", "-n", "default"),
        ("list", "trainingjobs.ctrain.dev", "--all-namespaces"),
        ("create", "clusterroles.rbac.authorization.k8s.io"),
        ("delete", "nodes"),
        ("create", "pods", "-n", watched),
        ("update", "trainingjobs.ctrain.dev", "-n", watched),
    ]:
        assert not can_i(sandbox, system, *args), args

    # The TrainingJob kept its status after the operator that wrote it is gone.
    assert get(custom, "trainingjobs", watched, "via-chart")["status"]["phase"] == "Succeeded"


def test_chart_schema_rejects_a_typo_at_install(sandbox):
    result = helm(sandbox, "template", RELEASE, str(CHART), "--set", "watchNamespace=oops")
    assert result.returncode != 0
    assert "watchNamespace" in result.stderr
