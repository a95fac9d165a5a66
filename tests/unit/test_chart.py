"""The Helm chart, rendered by the real `helm` binary: security defaults, least-privilege
RBAC, the operator's environment contract, the strict values schema and the generated CRDs.
"""

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import (
    CHART,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    ROOT,
    find_helm,
    one,
    only,
    render,
    run_helm,
)
from click.testing import CliRunner

from ctrain.api import KINDS, Resource
from ctrain.controller.config import OperatorConfig
from ctrain_dev.generate.chart import escape_template, render_chart_crds
from ctrain_dev.generate.cli import generate
from ctrain_dev.generate.crd import build_crd, file_name
from ctrain_dev.sandbox import binaries

pytestmark = pytest.mark.unit


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_helm()


ALL_VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}
# What the reconcilers call, per (apiGroup, resource): exactly this and nothing more.
NAMESPACED_PERMISSIONS = {
    ("ctrain.dev", "trainingjobs"): {"get", "list", "watch", "patch", "create", "delete"},
    ("ctrain.dev", "modeldeployments"): {"get", "list", "watch", "patch"},
    ("ctrain.dev", "continuoustrainings"): {"get", "list", "watch", "patch"},
    ("ctrain.dev", "trainingjobs/status"): {"patch"},
    ("ctrain.dev", "modeldeployments/status"): {"patch"},
    ("ctrain.dev", "continuoustrainings/status"): {"patch"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
    ("apps", "deployments"): ALL_VERBS,
    ("apps", "replicasets"): {"list"},
    ("", "services"): ALL_VERBS,
    ("", "pods"): {"get", "list", "watch"},
    ("", "events"): {"create", "patch"},
    ("events.k8s.io", "events"): {"create", "patch"},
}
# kopf's resource discovery: it watches CRDs to serve ones created after it started.
CLUSTER_PERMISSIONS = {("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"}}


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    result: dict[str, Any] = containers[0]
    return result


def plain_env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(manifests)["env"] if "value" in e}


def permissions(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    return granted


# --- lint ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [[], ["--strict"], ["--strict", "--set", "watchNamespaces={a,b}"]],
    ids=["default", "strict", "strict-namespaced"],
)
def test_lint(helm: Path, args: list[str]) -> None:
    result = run_helm(helm, "lint", str(CHART), *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


# --- the operator Deployment -------------------------------------------------------------


def test_deployment_runs_one_operator_with_recreate(helm: Path) -> None:
    manifests = render(helm)
    deployment = one(manifests, "Deployment")
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]
    assert (
        deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    )
    operator = container(manifests)
    assert operator["image"] == "ctrain/ctrain:0.1.0"
    assert operator["command"] == ["ctrain"]
    assert operator["args"] == ["operator", "--liveness-port=8081"]
    assert pod["spec"]["serviceAccountName"] == one(manifests, "ServiceAccount")["metadata"]["name"]


def test_probes_hit_healthz_on_the_liveness_port(helm: Path) -> None:
    operator = container(render(helm, "healthz.port=9091"))
    assert "--liveness-port=9091" in operator["args"]
    ports = {port["name"]: port["containerPort"] for port in operator["ports"]}
    assert ports["healthz"] == 9091
    for probe in ("livenessProbe", "readinessProbe"):
        assert operator[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    disabled = container(render(helm, "livenessProbe.enabled=false"))
    assert "livenessProbe" not in disabled
    assert "readinessProbe" in disabled


def test_security_contexts_are_restricted_by_default(helm: Path) -> None:
    manifests = render(helm)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "fsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    operator = container(manifests)
    assert operator["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    # A read-only root filesystem needs a writable /tmp.
    assert {"name": "tmp", "mountPath": "/tmp"} in operator["volumeMounts"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"]
    unlimited = one(render(helm, "tmpSizeLimit="), "Deployment")["spec"]["template"]["spec"]
    assert unlimited["volumes"] == [{"name": "tmp", "emptyDir": {}}]


def test_default_env_configures_the_default_storage(helm: Path) -> None:
    env = plain_env(render(helm))
    assert {k: v for k, v in env.items() if k.startswith("CTRAIN_")} == {
        "CTRAIN_IMAGE": "ctrain/ctrain:0.1.0",
        "CTRAIN_IMAGE_PULL_POLICY": "IfNotPresent",
        "CTRAIN_S3_ENDPOINT": "",
        "CTRAIN_S3_REGION": "us-east-1",
        "CTRAIN_S3_ADDRESSING_STYLE": "path",
        "CTRAIN_DEFAULT_BUCKET": "models",
        "CTRAIN_DEFAULT_PREFIX": "ctrain",
        "CTRAIN_S3_SECRET": "s3-credentials",
        "CTRAIN_S3_ALLOWED": "[]",
        "CTRAIN_S3_ALLOW_HTTP": "false",
        "CTRAIN_S3_SSE": "None",
        "CTRAIN_S3_SSE_KMS_KEY_ID": "",
        "CTRAIN_WATCH_NAMESPACES": "",
        "CTRAIN_TRAINER_RESOURCES": json.dumps(
            {"limits": {"memory": "2Gi"}, "requests": {"cpu": "500m", "memory": "512Mi"}},
            separators=(",", ":"),
        ),
        "CTRAIN_SERVER_RESOURCES": json.dumps(
            {"limits": {"memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "256Mi"}},
            separators=(",", ":"),
        ),
        "CTRAIN_LOG_FORMAT": "text",
        "CTRAIN_METRICS_PORT": "8080",
    }
    assert "AWS_ENDPOINT_URL" not in env


def test_the_allowlist_and_plain_http_reach_the_operator(helm: Path) -> None:
    from ctrain.controller.config import OperatorConfig

    env = plain_env(
        render(
            helm,
            "storage.allowed[0].endpoint=https://minio.example:9000",
            "storage.allowed[0].buckets[0]=datasets",
            "storage.allowHttp=true",
        )
    )
    config = OperatorConfig.from_env(env)
    assert config.s3_allow_http
    assert config.storage_allowed("https://minio.example:9000", "datasets")
    assert not config.storage_allowed("https://minio.example:9000", "other")


def test_env_is_what_the_operator_reads(helm: Path) -> None:
    """The contract with `OperatorConfig.from_env`: values in, the right config out."""
    manifests = render(
        helm,
        "storage.endpoint=http://minio.minio.svc:9000",
        "storage.region=eu-west-1",
        "storage.addressingStyle=virtual",
        "storage.bucket=ml-models",
        "storage.prefix=team-a",
        "storage.credentialsSecret=minio-keys",
        "watchNamespaces={ml,ml-staging}",
        "image.registry=registry.example.com",
        "image.tag=1.2.3",
        "image.pullPolicy=Always",
        "podDefaults.trainer.resources.requests.cpu=1500m",
        "podDefaults.server.resources=null",
    )
    env = plain_env(manifests)
    config = OperatorConfig.from_env(env)
    assert config == OperatorConfig(
        image="registry.example.com/ctrain/ctrain:1.2.3",
        image_pull_policy="Always",
        s3_endpoint="http://minio.minio.svc:9000",
        s3_region="eu-west-1",
        s3_addressing_style="virtual",
        default_bucket="ml-models",
        default_prefix="team-a",
        default_secret="minio-keys",
        watch_namespaces=("ml", "ml-staging"),
        trainer_resources={
            "requests": {"cpu": "1500m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        },
        server_resources={},
    )
    assert container(manifests)["image"] == config.image
    # boto3 in the operator process sees the same endpoint and region.
    assert env["AWS_ENDPOINT_URL"] == "http://minio.minio.svc:9000"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"


def test_no_credentials_secret_means_none(helm: Path) -> None:
    manifests = render(helm, "storage.credentialsSecret=")
    assert OperatorConfig.from_env(plain_env(manifests)).default_secret is None
    assert not [e for e in container(manifests)["env"] if "valueFrom" in e]


def test_operator_gets_keys_only_through_an_optional_secret_key_ref(helm: Path) -> None:
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container(render(helm))["env"]
        if "valueFrom" in e
    }
    assert refs == {
        key: {"name": "s3-credentials", "key": key, "optional": True}
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    without = container(render(helm, "storage.operatorCredentials=false"))
    assert not [e for e in without["env"] if "valueFrom" in e]


def test_log_format_verbose_command_and_extra_args(helm: Path) -> None:
    manifests = render(
        helm,
        "logFormat=json",
        "verbose=true",
        "command={/opt/venv/bin/ctrain}",
        "extraArgs={--foo=bar}",
        "extraEnv[0].name=EXTRA",
        "extraEnv[0].value=one",
    )
    operator = container(manifests)
    assert operator["command"] == ["/opt/venv/bin/ctrain"]
    assert operator["args"] == ["operator", "--liveness-port=8081", "--verbose", "--foo=bar"]
    env = plain_env(manifests)
    assert (env["CTRAIN_LOG_FORMAT"], env["EXTRA"]) == ("json", "one")


def test_image_digest_wins_over_the_tag(helm: Path) -> None:
    digest = "sha256:" + "a" * 64
    manifests = render(helm, "image.tag=9.9.9", f"image.digest={digest}")
    assert container(manifests)["image"] == f"ctrain/ctrain@{digest}"
    assert plain_env(manifests)["CTRAIN_IMAGE"] == f"ctrain/ctrain@{digest}"


def test_scheduling_values_reach_the_pod(helm: Path) -> None:
    pod = one(
        render(
            helm,
            "tolerations[0].key=dedicated",
            "tolerations[0].operator=Exists",
            "tolerations[0].effect=NoSchedule",
            "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0].key=pool",
            "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
            ".nodeSelectorTerms[0].matchExpressions[0].operator=Exists",
            "priorityClassName=system-cluster-critical",
        ),
        "Deployment",
    )["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}
    ]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "pool", "operator": "Exists"}]}
    ]
    assert pod["priorityClassName"] == "system-cluster-critical"


# --- RBAC --------------------------------------------------------------------------------


def assert_no_wildcards_or_secrets(rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        for field in ("apiGroups", "resources", "verbs"):
            assert not [item for item in rule[field] if "*" in item], rule
        assert "secrets" not in rule["resources"], rule
        assert "pods/exec" not in rule["resources"], rule
        assert "nonResourceURLs" not in rule and "resourceNames" not in rule, rule


def operator_cluster_role(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's own ClusterRole (the others are the users' aggregated roles)."""
    roles = [m for m in only(manifests, "ClusterRole") if m["metadata"]["name"] == FULLNAME]
    assert len(roles) == 1
    return roles[0]


def test_cluster_role_is_least_privilege(helm: Path) -> None:
    manifests = render(helm)
    role = operator_cluster_role(manifests)
    assert_no_wildcards_or_secrets(role["rules"])
    assert permissions(role["rules"]) == {**CLUSTER_PERMISSIONS, **NAMESPACED_PERMISSIONS}
    assert only(manifests, "Role") == []
    binding = one(manifests, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = one(manifests, "ServiceAccount")["metadata"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}
    ]


def test_watch_namespaces_get_roles_and_no_cluster_wide_namespaced_rules(helm: Path) -> None:
    manifests = render(helm, "watchNamespaces={a,b}")
    cluster_role = operator_cluster_role(manifests)
    assert permissions(cluster_role["rules"]) == CLUSTER_PERMISSIONS
    roles = {role["metadata"]["namespace"]: role for role in only(manifests, "Role")}
    assert sorted(roles) == ["a", "b"]
    for role in roles.values():
        assert_no_wildcards_or_secrets(role["rules"])
        assert permissions(role["rules"]) == NAMESPACED_PERMISSIONS
    bindings = {b["metadata"]["namespace"]: b for b in only(manifests, "RoleBinding")}
    assert sorted(bindings) == ["a", "b"]
    for namespace, binding in bindings.items():
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == roles[namespace]["metadata"]["name"]
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": NAMESPACE}
        ]
    assert plain_env(manifests)["CTRAIN_WATCH_NAMESPACES"] == "a,b"


def test_rbac_and_service_account_can_be_left_to_the_user(helm: Path) -> None:
    manifests = render(
        helm, "rbac.create=false", "serviceAccount.create=false", "serviceAccount.name=mine"
    )
    kinds = {m["kind"] for m in manifests}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    assert "ServiceAccount" not in kinds
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "mine"


# --- metrics -----------------------------------------------------------------------------


def test_metrics_service_selects_the_operator_pod(helm: Path) -> None:
    manifests = render(helm)
    service = one(manifests, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    ports = {port["name"]: port["containerPort"] for port in container(manifests)["ports"]}
    assert ports["metrics"] == 8080
    assert only(manifests, "ServiceMonitor") == []


def test_metrics_can_be_turned_off(helm: Path) -> None:
    manifests = render(helm, "metrics.enabled=false", "metrics.serviceMonitor.enabled=true")
    assert only(manifests, "Service") == []
    assert only(manifests, "ServiceMonitor") == []
    assert "CTRAIN_METRICS_PORT" not in plain_env(manifests)
    assert "metrics" not in {port["name"] for port in container(manifests)["ports"]}


def test_service_monitor(helm: Path) -> None:
    manifests = render(
        helm,
        "metrics.port=9102",
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prometheus",
    )
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert [(e["port"], e["path"]) for e in monitor["spec"]["endpoints"]] == [
        ("metrics", "/metrics")
    ]
    assert service["spec"]["ports"][0]["port"] == 9102
    assert plain_env(manifests)["CTRAIN_METRICS_PORT"] == "9102"


# --- CRDs --------------------------------------------------------------------------------


def crds(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in only(manifests, "CustomResourceDefinition")}


def test_crds_are_rendered_and_kept_by_default(helm: Path) -> None:
    rendered = crds(render(helm))
    assert sorted(rendered) == sorted(build_crd(kind)["metadata"]["name"] for kind in KINDS)
    for crd in rendered.values():
        assert crd["metadata"]["annotations"] == {
            "helm.sh/resource-policy": "keep",
            "argocd.argoproj.io/sync-options": "Delete=false,Prune=false",
        }
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "ctrain"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crds_keep_can_be_turned_off(helm: Path) -> None:
    for crd in crds(render(helm, "crds.keep=false")).values():
        assert "annotations" not in crd["metadata"]


def test_crds_disabled_renders_no_crd(helm: Path) -> None:
    manifests = render(helm, "crds.enabled=false")
    assert crds(manifests) == {}
    assert only(manifests, "Deployment")


@pytest.mark.parametrize("kind", KINDS, ids=[kind.KIND for kind in KINDS])
def test_rendered_crd_is_the_generated_crd(helm: Path, kind: type[Resource]) -> None:
    """The chart adds labels and the keep annotation; the rest is `build_crd` verbatim."""
    expected = build_crd(kind)
    rendered = crds(render(helm))[expected["metadata"]["name"]]
    assert rendered["spec"] == expected["spec"]
    assert expected["metadata"]["labels"].items() <= rendered["metadata"]["labels"].items()


def test_chart_crd_templates_are_fresh() -> None:
    on_disk = {
        path.name: path.read_text() for path in sorted((CHART / "templates" / "crds").glob("*"))
    }
    assert on_disk == render_chart_crds(), (
        "charts/ctrain/templates/crds is stale: run `make generate`"
    )
    assert set(on_disk) == {file_name(kind) for kind in KINDS}


def test_generate_check_covers_the_chart() -> None:
    result = CliRunner().invoke(generate, ["--check", "--root", str(ROOT)])
    assert result.exit_code == 0, result.output


def test_template_delimiters_in_generated_text_stay_literal(helm: Path, tmp_path: Path) -> None:
    text = 'use {{ .Values.x }} or "}}" and {{- literally'
    assert escape_template("no braces") == "no braces"
    chart = tmp_path / "echo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: echo\nversion: 0.1.0\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: echo\ndata:\n  text: |-\n    "
        + escape_template(text)
        + "\n"
    )
    result = run_helm(helm, "template", "echo", str(chart))
    assert result.returncode == 0, result.stderr
    assert yaml.safe_load(result.stdout)["data"]["text"] == text


# --- values and schema -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("imagee.tag=x", "additional properties 'imagee' not allowed"),
        ("metrics.port=abc", "want integer"),
        ("storage.addressingStyle=vhost", "value must be one of"),
        ("logFormat=xml", "value must be one of"),
        ("containerSecurityContext.readOnlyRootFileSystem=false", "additional properties"),
        ("watchNamespaces={Not_A_Namespace}", "does not match pattern"),
        ("resources.requests.memory=lots", "does not match pattern"),
    ],
)
def test_schema_rejects_typos_and_wrong_types(helm: Path, value: str, complaint: str) -> None:
    args = ["template", RELEASE, str(CHART), "--kube-version", binaries.KUBERNETES_VERSION]
    result = run_helm(helm, *args, "--set", value)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def schema_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield path, node
        for key, child in node.items():
            yield from schema_nodes(child, f"{path}/{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from schema_nodes(child, f"{path}/{index}")


def test_schema_is_strict_at_every_object_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    loose = [
        path
        for path, node in schema_nodes(schema)
        if node.get("type") == "object"
        and path != "/properties/global"  # a parent chart may set any global
        and node.get("additionalProperties") is not False
        and not isinstance(node.get("additionalProperties"), dict)
    ]
    assert loose == []
    # Maps (labels, annotations, resource lists) constrain their values instead.
    assert schema["properties"]["podLabels"]["additionalProperties"] == {"type": "string"}


VALUES_TEXT = (CHART / "values.yaml").read_text()
VALUES = yaml.safe_load(VALUES_TEXT)
# Values that are Kubernetes objects are documented as a whole, not field by field.
WHOLE_OBJECTS = {
    "resources",
    "podDefaults.trainer.resources",
    "podDefaults.server.resources",
    "podSecurityContext",
    "containerSecurityContext",
    "nodeSelector",
    "monitoring.grafanaDashboard.labels",
}


def value_paths(values: dict[str, Any], prefix: str = "") -> list[str]:
    paths = []
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and path not in WHOLE_OBJECTS:
            paths += value_paths(value, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_every_value_is_commented() -> None:
    uncommented = []
    previous = ""
    for line in VALUES_TEXT.splitlines():
        if not line.strip():
            continue
        key = re.match(r"^\s*([A-Za-z][\w./-]*):", line)
        if key and not previous.lstrip().startswith("#"):
            uncommented.append(key.group(1))
        previous = line
    assert uncommented == []


def test_schema_covers_exactly_the_values() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]) == set(VALUES)
    for name, node in schema["properties"].items():
        assert node.get("description"), name


def value_at(path: str) -> Any:
    node: Any = VALUES
    for key in path.split("."):
        node = node[key]
    return node


def test_readme_documents_every_value_with_its_default() -> None:
    readme = (CHART / "README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| \w+ \| `([^`]*)` \|", readme, flags=re.MULTILINE)
    assert sorted(path for path, _ in rows) == sorted(value_paths(VALUES))
    stale = [path for path, default in rows if json.loads(default) != value_at(path)]
    assert stale == [], "the README's defaults differ from values.yaml"
