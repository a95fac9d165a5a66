"""The chart's access pieces for platform teams, rendered by the real `helm`: the
aggregated user roles, the `helm test` pod, the private-CA bundle, the NetworkPolicies and
what NOTES.txt tells people to run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHART, FULLNAME, NAMESPACE, RELEASE, find_helm, one, only, render, run_helm

from ctrain_dev.sandbox import binaries

pytestmark = pytest.mark.unit

KINDS = ["trainingjobs", "modeldeployments", "continuoustrainings"]
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
STORAGE_PEER = "networkPolicy.storagePeers[0].ipBlock.cidr=10.20.0.0/16"


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_helm()


def by_name(manifests: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in only(manifests, kind)}


# --- aggregated ClusterRoles -----------------------------------------------------------------


def test_users_with_view_read_and_with_edit_write_ctrain_objects(helm: Path) -> None:
    roles = by_name(render(helm), "ClusterRole")
    view, edit = roles[f"{FULLNAME}-view"], roles[f"{FULLNAME}-edit"]
    aggregated_into = {
        name: {k.removeprefix(AGGREGATE) for k, v in role["metadata"]["labels"].items()
               if k.startswith(AGGREGATE) and v == "true"}
        for name, role in (("view", view), ("edit", edit))
    }  # fmt: skip
    assert aggregated_into == {"view": {"view", "edit", "admin"}, "edit": {"edit", "admin"}}
    assert view["rules"] == [
        {"apiGroups": ["ctrain.dev"], "resources": KINDS, "verbs": ["get", "list", "watch"]}
    ]
    assert edit["rules"] == [
        {
            "apiGroups": ["ctrain.dev"],
            "resources": KINDS,
            "verbs": ["create", "update", "patch", "delete", "deletecollection"],
        }
    ]
    # Status is the operator's alone.
    for role in (view, edit):
        assert not [r for rule in role["rules"] for r in rule["resources"] if "/" in r]


@pytest.mark.parametrize("switch", ["rbac.aggregateClusterRoles=false", "rbac.create=false"])
def test_aggregated_roles_can_be_left_out(helm: Path, switch: str) -> None:
    roles = by_name(render(helm, switch), "ClusterRole")
    assert f"{FULLNAME}-view" not in roles
    assert f"{FULLNAME}-edit" not in roles


# --- helm test ---------------------------------------------------------------------------------


def hook_pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    pods = [m for m in only(manifests, "Pod") if m["metadata"]["annotations"]["helm.sh/hook"]]
    assert len(pods) == 1
    return pods[0]


def test_helm_test_asks_the_operator_metrics_service(helm: Path) -> None:
    manifests = render(helm, "metrics.port=9102", "image.tag=1.2.3")
    pod = hook_pod(manifests)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    [container] = pod["spec"]["containers"]
    assert container["image"] == "ctrain/ctrain:1.2.3"
    env = {e["name"]: e["value"] for e in container["env"]}
    service = one(manifests, "Service")["metadata"]["name"]
    assert env["CTRAIN_METRICS_URL"] == f"http://{service}.{NAMESPACE}.svc:9102/metrics"
    # Pod Security `restricted`, like every pod of the chart.
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["automountServiceAccountToken"] is False


@pytest.mark.parametrize("switch", ["tests.enabled=false", "metrics.enabled=false"])
def test_helm_test_needs_the_metrics_endpoint(helm: Path, switch: str) -> None:
    assert only(render(helm, switch), "Pod") == []


# --- private CA --------------------------------------------------------------------------------


def operator_pod(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = one(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize(
    ("sets", "source"),
    [
        (
            [
                "storage.caBundle.configMap.name=corp-ca",
                "storage.caBundle.configMap.key=bundle.pem",
            ],
            {
                "configMap": {
                    "name": "corp-ca",
                    "items": [{"key": "bundle.pem", "path": "bundle.pem"}],
                }
            },
        ),
        (
            ["storage.caBundle.secret.name=minio-tls"],
            {"secret": {"secretName": "minio-tls", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        ),
    ],
    ids=["configmap", "secret"],
)
def test_ca_bundle_is_mounted_and_named_in_aws_ca_bundle(
    helm: Path, sets: list[str], source: dict[str, Any]
) -> None:
    pod = operator_pod(render(helm, *sets))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["ca-bundle"] == {"name": "ca-bundle", **source}
    [container] = pod["containers"]
    assert {"name": "ca-bundle", "mountPath": "/etc/ctrain/ca", "readOnly": True} in container[
        "volumeMounts"
    ]
    file = next(iter(source.values()))["items"][0]["path"]
    assert {"name": "AWS_CA_BUNDLE", "value": f"/etc/ctrain/ca/{file}"} in container["env"]


def test_no_ca_bundle_by_default(helm: Path) -> None:
    pod = operator_pod(render(helm))
    assert "ca-bundle" not in {v["name"] for v in pod["volumes"]}
    assert "AWS_CA_BUNDLE" not in {e["name"] for e in pod["containers"][0]["env"]}


def test_ca_bundle_from_two_sources_is_refused(helm: Path) -> None:
    result = run_helm(
        helm, "template", RELEASE, str(CHART), "--kube-version", binaries.KUBERNETES_VERSION,
        "--set", "storage.caBundle.configMap.name=a", "--set", "storage.caBundle.secret.name=b",
    )  # fmt: skip
    assert result.returncode != 0
    assert "set configMap.name or secret.name, not both" in result.stderr


# --- NetworkPolicies ---------------------------------------------------------------------------


def policies(helm: Path, *sets: str) -> dict[tuple[str, str], dict[str, Any]]:
    manifests = render(helm, "networkPolicy.enabled=true", STORAGE_PEER, *sets)
    return {
        (m["metadata"]["namespace"], m["metadata"]["name"]): m["spec"]
        for m in only(manifests, "NetworkPolicy")
    }


def test_network_policies_are_opt_in(helm: Path) -> None:
    assert only(render(helm, "watchNamespaces={ml}"), "NetworkPolicy") == []


def test_training_pods_reach_only_dns_and_storage(helm: Path) -> None:
    found = policies(helm, "watchNamespaces={ml,ml-staging}")
    assert sorted(found) == [
        ("ml", f"{FULLNAME}-serving"),
        ("ml", f"{FULLNAME}-training"),
        ("ml-staging", f"{FULLNAME}-serving"),
        ("ml-staging", f"{FULLNAME}-training"),
    ]
    training = found[("ml", f"{FULLNAME}-training")]
    assert training["podSelector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "ctrain-trainer",
            "app.kubernetes.io/managed-by": "ctrain",
        }
    }
    assert training["policyTypes"] == ["Ingress", "Egress"]
    assert training["ingress"] == []
    dns, storage = training["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert storage == {
        "to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    }


def test_training_pod_labels_are_the_ones_the_operator_builds() -> None:
    from ctrain.api import TrainingJobSpec
    from ctrain.controller.config import OperatorConfig
    from ctrain.controller.training_builders import build_job

    body = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "iris-1", "namespace": "ml", "uid": "u"},
    }
    spec = TrainingJobSpec.model_validate(
        {"model": "iris", "dataset": {"uri": "builtin://iris"},
         "estimator": {"type": "sklearn.linear_model.LogisticRegression"}}
    )  # fmt: skip
    job = build_job(body, spec, OperatorConfig.from_env({}))
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "ctrain-trainer"
    assert labels["app.kubernetes.io/managed-by"] == "ctrain"


def test_serving_pods_accept_only_named_namespaces_the_operator_and_monitoring(helm: Path) -> None:
    found = policies(
        helm,
        "networkPolicy.namespaces={serving}",
        "networkPolicy.clientNamespaces={web,checkout}",
        "networkPolicy.monitoringNamespace=observability",
        "networkPolicy.storagePorts[0].port=9000",
    )
    serving = found[("serving", f"{FULLNAME}-serving")]
    assert serving["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "ctrain-server"
    [ingress] = serving["ingress"]
    assert ingress["ports"] == [{"port": "http", "protocol": "TCP"}]
    own, operator, monitoring, clients = ingress["from"]
    assert own == {"podSelector": {}}
    assert operator == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}},
        "podSelector": {
            "matchLabels": {
                "app.kubernetes.io/name": "ctrain",
                "app.kubernetes.io/instance": RELEASE,
                "app.kubernetes.io/component": "operator",
            }
        },
    }
    operator_labels = one(render(helm), "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert operator["podSelector"]["matchLabels"].items() <= operator_labels.items()
    assert monitoring == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}
    }
    assert clients == {
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": ["web", "checkout"],
                }
            ]
        }
    }
    assert serving["egress"][1]["ports"] == [{"port": 9000}]  # --set replaced the list


def test_serving_without_client_or_monitoring_namespaces(helm: Path) -> None:
    found = policies(helm, "watchNamespaces={ml}", "networkPolicy.monitoringNamespace=")
    [ingress] = found[("ml", f"{FULLNAME}-serving")]["ingress"]
    assert len(ingress["from"]) == 2  # own namespace and the operator


@pytest.mark.parametrize(
    ("sets", "complaint"),
    [
        (["networkPolicy.enabled=true", STORAGE_PEER], "needs networkPolicy.namespaces"),
        (["networkPolicy.enabled=true", "watchNamespaces={ml}"], "storagePeers is empty"),
    ],
)
def test_network_policies_fail_closed(helm: Path, sets: list[str], complaint: str) -> None:
    args = ["template", RELEASE, str(CHART), "--kube-version", binaries.KUBERNETES_VERSION]
    for value in sets:
        args += ["--set", value]
    result = run_helm(helm, *args)
    assert result.returncode != 0
    assert complaint in result.stderr


# --- NOTES.txt ---------------------------------------------------------------------------------


def notes(helm: Path, tmp_path: Path, *sets: str) -> str:
    """NOTES.txt as `helm install` prints it. `helm template` does not render NOTES and
    `install --dry-run` wants a cluster, so a copy of the chart renders it through `tpl`
    into a ConfigMap."""
    chart = tmp_path / "ctrain"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        (chart / "templates" / "NOTES.txt").rename(chart / "notes.tpl")
        (chart / "templates" / "notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
            'data:\n  text: {{ tpl (.Files.Get "notes.tpl") . | toJson }}\n'
        )
    args = ["template", RELEASE, str(chart), "--namespace", NAMESPACE]
    args += ["--kube-version", binaries.KUBERNETES_VERSION, "--show-only", "templates/notes.yaml"]
    for value in sets:
        args += ["--set", value]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    text: str = yaml.safe_load(result.stdout)["data"]["text"]
    return text


def test_notes_wait_for_complete_not_ready(helm: Path, tmp_path: Path) -> None:
    text = notes(helm, tmp_path)
    assert "wait --for=condition=Complete trainingjob/iris-1" in text
    assert "--for=condition=Ready trainingjob" not in text
    assert f"helm test {RELEASE} -n {NAMESPACE}" in text
    assert "helm test" not in notes(helm, tmp_path, "tests.enabled=false")


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("networkPolicy.storagePorts[0].protocol=HTTP", "value must be one of"),
        ("networkPolicy.clientNamespaces={Web}", "does not match pattern"),
        ("networkPolicy.storagePeers[0].ipBlok.cidr=10.0.0.0/8", "additional properties"),
        ("monitoring.prometheusRule.driftThreshold=high", "does not match pattern"),
        ("monitoring.podMonitor.interval=soon", "does not match pattern"),
        ("storage.caBundle.configMap.nam=x", "additional properties"),
        ("rbac.aggregateClusterRoles=maybe", "want boolean"),
    ],
)
def test_schema_rejects_typos_in_the_new_values(helm: Path, value: str, complaint: str) -> None:
    args = ["template", RELEASE, str(CHART), "--kube-version", binaries.KUBERNETES_VERSION]
    result = run_helm(helm, *args, "--set", value)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr
