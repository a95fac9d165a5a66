"""The chart's platform pieces installed into the sandbox with helm: the aggregated user
roles as the real RBAC aggregation controller builds them, NetworkPolicies the API server
accepts, the CA bundle mounted into a running operator, and the `helm test` pod's check
run as a real restricted pod against the running operator.

The sandbox has no Service routing and no DNS, so `helm test` itself cannot reach the
metrics Service; the test runs the hook pod exactly as rendered with its URL pointed at
the operator pod's address. The sandbox has no network plugin either: the NetworkPolicies
are validated and stored, not enforced.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from ctrain_dev.sandbox import operator as sandbox_operator
from kubehelpers import kubectl, make_namespace, wait_for

pytestmark = pytest.mark.integration
CHART = Path(__file__).parents[2] / "charts" / "ctrain"
RELEASE = "ctrain-platform"  # its own release: no clash with test_chart_install's
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


def helm(sandbox: Any, *args: str) -> subprocess.CompletedProcess[str]:
    binary = next(Path(d) / "helm" for d in sandbox.bin_dirs if (Path(d) / "helm").exists())
    return subprocess.run(
        [str(binary), f"--kubeconfig={sandbox.kubeconfig}", *args],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip


@pytest.fixture
def installed(sandbox: Any, core: client.CoreV1Api, operator: Any) -> Iterator[tuple[str, str]]:
    system = make_namespace(core, "ctrain-platform", RESTRICTED)
    watched = make_namespace(core, "ctrain-team", RESTRICTED)
    for namespace in (system, watched):
        sandbox_operator.credentials_secret(sandbox, namespace)
    ca = (Path(sandbox.directory) / "pki" / "ca.crt").read_text()
    core.create_namespaced_config_map(
        system,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="corp-ca"), data={"ca.crt": ca}),
    )
    s3_host, s3_port = sandbox.s3_endpoint.removeprefix("http://").split(":")
    operator.stop()
    result = helm(
        sandbox, "install", RELEASE, str(CHART), "--namespace", system, "--wait",
        "--timeout", "180s",
        "--set", "crds.enabled=false",
        "--set", f"watchNamespaces={{{watched}}}",
        "--set", f"storage.endpoint={sandbox.s3_endpoint}",
        "--set", "storage.allowHttp=true",
        "--set", "image.tag=dev",
        "--set", "storage.caBundle.configMap.name=corp-ca",
        "--set", "networkPolicy.enabled=true",
        "--set", f"networkPolicy.storagePeers[0].ipBlock.cidr={s3_host}/32",
        "--set", f"networkPolicy.storagePorts[0].port={s3_port}",
        "--set", "networkPolicy.clientNamespaces={default}",
    )  # fmt: skip
    try:
        assert result.returncode == 0, result.stderr
        yield system, watched
    finally:
        helm(sandbox, "uninstall", RELEASE, "--namespace", system, "--wait")
        for namespace in (system, watched):
            core.delete_namespace(namespace)
        operator.start()


def can_i(sandbox: Any, user: str, *args: str) -> bool:
    result = kubectl(sandbox, "auth", "can-i", *args, f"--as={user}", check=False)
    return result.stdout.strip() == "yes"


def test_chart_platform_pieces_in_a_real_cluster(
    sandbox: Any, api_client: client.ApiClient, installed: tuple[str, str]
) -> None:
    system, watched = installed
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)

    # The operator runs with the CA bundle mounted and named in AWS_CA_BUNDLE.
    [pod] = core.list_namespaced_pod(
        system, label_selector="app.kubernetes.io/component=operator"
    ).items
    assert all(c.ready for c in pod.status.container_statuses)
    [container] = pod.spec.containers
    assert {e.name: e.value for e in container.env}["AWS_CA_BUNDLE"] == "/etc/ctrain/ca/ca.crt"
    assert any(m.mount_path == "/etc/ctrain/ca" for m in container.volume_mounts)

    # Users with Kubernetes' own roles: edit may create TrainingJobs, view may only read.
    for user, role in (("alice", "edit"), ("bob", "view")):
        group = "rbac.authorization.k8s.io"
        binding = client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name=f"{user}-{role}"),
            role_ref=client.V1RoleRef(api_group=group, kind="ClusterRole", name=role),
            subjects=[client.RbacV1Subject(api_group=group, kind="User", name=user)],
        )
        rbac.create_namespaced_role_binding(watched, binding)
    # The aggregation controller fills `edit` and `view` asynchronously.
    wait_for(
        lambda: can_i(sandbox, "alice", "create", "trainingjobs.ctrain.dev", "-n", watched),
        timeout=60, what="alice (edit) may create TrainingJobs",
    )  # fmt: skip
    for verb, resource in [
        ("create", "modeldeployments.ctrain.dev"),
        ("delete", "continuoustrainings.ctrain.dev"),
        ("list", "trainingjobs.ctrain.dev"),
    ]:
        assert can_i(sandbox, "alice", verb, resource, "-n", watched), (verb, resource)
    wait_for(
        lambda: can_i(sandbox, "bob", "list", "modeldeployments.ctrain.dev", "-n", watched),
        timeout=60, what="bob (view) may list ModelDeployments",
    )  # fmt: skip
    assert not can_i(sandbox, "bob", "create", "trainingjobs.ctrain.dev", "-n", watched)
    assert not can_i(
        sandbox, "alice", "patch", "trainingjobs.ctrain.dev", "--subresource=status", "-n", watched
    )
    assert not can_i(sandbox, "alice", "create", "trainingjobs.ctrain.dev", "-n", system)

    # The NetworkPolicies were accepted by the API server's validation, in the watched namespace.
    policies = client.NetworkingV1Api(api_client).list_namespaced_network_policy(watched).items
    assert sorted(p.metadata.name for p in policies) == [
        f"{RELEASE}-serving",
        f"{RELEASE}-training",
    ]

    # The helm test pod, as rendered, against the operator pod's address: it passes, and it
    # fails against a port where nothing answers.
    hooks = list(yaml.safe_load_all(helm(sandbox, "get", "hooks", RELEASE, "-n", system).stdout))
    [hook] = [h for h in hooks if h and h["kind"] == "Pod"]
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    outcomes = {}
    for name, port in (("answers", 8080), ("silent", 9)):
        pod_manifest = _pointed_at(
            hook, f"{RELEASE}-{name}", f"http://{pod.status.pod_ip}:{port}/metrics"
        )
        kubectl(sandbox, "apply", "-n", system, "-f", "-", stdin=yaml.safe_dump(pod_manifest))
    for name in ("answers", "silent"):
        outcomes[name] = wait_for(
            lambda name=name: _finished(core, system, f"{RELEASE}-{name}"),
            timeout=180, interval=1, what=f"test pod {name} to finish",
        )  # fmt: skip
    assert outcomes == {"answers": "Succeeded", "silent": "Failed"}


def _pointed_at(hook: dict[str, Any], name: str, url: str) -> dict[str, Any]:
    pod = yaml.safe_load(yaml.safe_dump(hook))
    pod["metadata"] = {"name": name, "labels": hook["metadata"].get("labels", {})}
    for env in pod["spec"]["containers"][0]["env"]:
        if env["name"] == "CTRAIN_METRICS_URL":
            env["value"] = url
    return pod  # type: ignore[no-any-return]


def _finished(core: client.CoreV1Api, namespace: str, name: str) -> str | None:
    phase = core.read_namespaced_pod(name, namespace).status.phase
    return phase if phase in ("Succeeded", "Failed") else None
