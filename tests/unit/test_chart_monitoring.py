"""The chart's observability pack: PodMonitor, PrometheusRule (run by the real `promtool`)
and the Grafana dashboard, and every metric they name exists in the code.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import NAMESPACE, ROOT, find_helm, one, only, render
from prometheus_client import CollectorRegistry

from ctrain.controller import metrics as operator_metrics
from ctrain.serving.metrics import ServingMetrics

pytestmark = pytest.mark.unit


@pytest.fixture(scope="session")
def helm() -> Path:
    return find_helm()


CHART = ROOT / "charts" / "ctrain"
DASHBOARD = CHART / "dashboards" / "ctrain.json"
PROMTOOL_TESTS = Path(__file__).parent / "promtool" / "ctrain_rules_test.yaml"
SERVER_LABELS = {
    "app.kubernetes.io/name": "ctrain-server",
    "app.kubernetes.io/managed-by": "ctrain",
}

# Metrics the rules or the dashboard use before the code exports them, with where they
# come from; docs/observability.md documents each. Remove a name once it exists.
PENDING_METRICS = {}


@pytest.fixture(scope="module")
def promtool() -> Path:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool is not on PATH: tests/tools/ensure-tools.sh (run by `make test-unit`) "
            "installs Debian's prometheus package, which needs root and apt-get"
        )
    return Path(found)


def rule_groups(helm: Path, *sets: str) -> list[dict[str, Any]]:
    manifests = render(helm, "monitoring.prometheusRule.enabled=true", *sets)
    groups: list[dict[str, Any]] = one(manifests, "PrometheusRule")["spec"]["groups"]
    return groups


def dashboard_config_maps(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in only(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")]


def alerts(groups: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


# --- PodMonitor ----------------------------------------------------------------------------


def test_monitoring_is_opt_in(helm: Path) -> None:
    kinds = {m["kind"] for m in render(helm)}
    assert not kinds & {"PodMonitor", "PrometheusRule"}
    assert [
        m for m in only(render(helm), "ConfigMap") if "dashboard" in m["metadata"]["name"]
    ] == []


def test_pod_monitor_selects_the_serving_pods(helm: Path) -> None:
    monitor = one(
        render(
            helm,
            "monitoring.podMonitor.enabled=true",
            "monitoring.podMonitor.labels.release=prometheus",
            "monitoring.podMonitor.interval=15s",
        ),
        "PodMonitor",
    )
    assert monitor["metadata"]["namespace"] == NAMESPACE
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"] == {"matchLabels": SERVER_LABELS}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    # The ctrain labels of the pods become the labels the rules and the dashboard group by.
    assert {r["targetLabel"]: r["sourceLabels"] for r in endpoint["relabelings"]} == {
        "deployment": ["__meta_kubernetes_pod_label_ctrain_dev_modeldeployment"],
        "model_version": ["__meta_kubernetes_pod_label_ctrain_dev_model_version"],
        "track": ["__meta_kubernetes_pod_label_ctrain_dev_track"],
    }


def test_pod_monitor_selects_the_serving_pods_the_operator_builds() -> None:
    """The labels the PodMonitor selects and relabels are the ones the builder writes."""
    from ctrain.api import ModelDeploymentSpec
    from ctrain.controller.config import OperatorConfig
    from ctrain.controller.modeldeployment.builders import build_deployment

    body = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "iris-serving", "namespace": "ml", "uid": "u"},
    }
    deployment = build_deployment(
        body,
        ModelDeploymentSpec.model_validate({"model": "iris"}),
        OperatorConfig.from_env({}),
        track="stable",
        version="3",
        replicas=1,
    )
    pod = deployment["spec"]["template"]
    assert SERVER_LABELS.items() <= pod["metadata"]["labels"].items()
    assert {
        "ctrain.dev/modeldeployment": "iris-serving",
        "ctrain.dev/model-version": "3",
        "ctrain.dev/track": "stable",
    }.items() <= pod["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c.get("ports", [])}
    assert "http" in ports


@pytest.mark.parametrize(
    ("sets", "expected"),
    [
        (["watchNamespaces={ml,ml-staging}"], {"matchNames": ["ml", "ml-staging"]}),
        (
            ["watchNamespaces={ml}", "monitoring.podMonitor.namespaces={serving}"],
            {"matchNames": ["serving"]},
        ),
    ],
)
def test_pod_monitor_namespaces(helm: Path, sets: list[str], expected: dict[str, Any]) -> None:
    monitor = one(render(helm, "monitoring.podMonitor.enabled=true", *sets), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == expected


# --- PrometheusRule ----------------------------------------------------------------------------


def test_rules_cover_what_platform_teams_page_on(helm: Path) -> None:
    rules = alerts(rule_groups(helm))
    assert set(rules) == {
        "CtrainOperatorDown",
        "CtrainReconcileErrors",
        "CtrainTrainingFailed",
        "CtrainServingRolledBack",
        "CtrainCanaryFailed",
        "CtrainDriftDetected",
        "CtrainModelPerformanceDegraded",
    }
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
    # The operator's alerts select exactly the ServiceMonitor's target.
    assert 'job="ctrain-metrics", namespace="ctrain-system"' in rules["CtrainOperatorDown"]["expr"]


def test_rule_values_reach_the_alerts(helm: Path) -> None:
    rules = alerts(
        rule_groups(
            helm,
            "monitoring.prometheusRule.driftThreshold=0.35",
            "monitoring.prometheusRule.driftMinSamples=1000",
            "monitoring.prometheusRule.for=30m",
            "monitoring.prometheusRule.alertLabels.team=ml-platform",
        )
    )
    drift = rules["CtrainDriftDetected"]
    assert "ctrain_serving_drift_score > 0.35" in drift["expr"]
    assert "ctrain_serving_drift_samples >= 1000" in drift["expr"]
    assert drift["for"] == "30m"
    assert all(rule["labels"]["team"] == "ml-platform" for rule in rules.values())


def test_without_operator_metrics_only_the_model_alerts_remain(helm: Path) -> None:
    rules = alerts(rule_groups(helm, "metrics.enabled=false"))
    assert set(rules) == {"CtrainDriftDetected", "CtrainModelPerformanceDegraded"}


def test_promtool_checks_and_tests_the_rules(helm: Path, promtool: Path, tmp_path: Path) -> None:
    """`promtool test rules` runs tests/unit/promtool/ctrain_rules_test.yaml against the
    rules the chart renders with its defaults: each alert fires on its story, not on the
    counterpart."""
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule_groups(helm)}))
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    check = subprocess.run(
        [str(promtool), "check", "rules", "rules.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    result = subprocess.run(
        [str(promtool), "test", "rules", PROMTOOL_TESTS.name],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_tests_fail_on_a_broken_rule(helm: Path, promtool: Path, tmp_path: Path) -> None:
    """The promtool cases can fail: a drift threshold of 0.5 misses the 0.35 story."""
    groups = rule_groups(helm, "monitoring.prometheusRule.driftThreshold=0.5")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(PROMTOOL_TESTS, tmp_path / PROMTOOL_TESTS.name)
    result = subprocess.run(
        [str(promtool), "test", "rules", PROMTOOL_TESTS.name],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "CtrainDriftDetected" in result.stdout + result.stderr


# --- the Grafana dashboard ---------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def dashboard_exprs() -> list[str]:
    board = dashboard()
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    return exprs


def test_dashboard_config_map_for_the_grafana_sidecar(helm: Path) -> None:
    manifests = render(
        helm,
        "monitoring.grafanaDashboard.enabled=true",
        "monitoring.grafanaDashboard.namespace=monitoring",
        "monitoring.grafanaDashboard.annotations.grafana_folder=ML",
    )
    [config_map] = [
        m for m in only(manifests, "ConfigMap") if m["metadata"]["name"].endswith("-dashboard")
    ]
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "ML"}
    # Grafana's `{{label}}` legends arrive untouched (the file is not a template).
    assert json.loads(config_map["data"]["ctrain.json"]) == dashboard()


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    board = dashboard()
    assert board["uid"] == "ctrain-overview"
    titles = {p["title"] for p in board["panels"]}
    assert {
        "Requests per second",
        "Error ratio",
        "Latency p50 and p99",
        "Drift per feature (PSI)",
        "Training outcomes",
        "Champion changes and rollbacks",
    } <= titles
    exprs = "\n".join(dashboard_exprs())
    # Serving per version, drift per feature.
    assert "by (namespace, deployment, model_version)" in exprs
    assert "by (model, feature) (ctrain_serving_drift_psi" in exprs
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["description"], panel["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables with values Prometheus accepts."""
    for variable, value in {
        "$__rate_interval": "5m",
        "$__interval": "1m",
        "$namespace": ".*",
        "$deployment": ".*",
    }.items():
        expr = expr.replace(variable, value)
    return expr


def test_dashboard_queries_are_valid_promql(promtool: Path, tmp_path: Path) -> None:
    rules = [
        {"record": f"ctrain:dashboard_query_{index}", "expr": grafana_to_promql(expr)}
        for index, expr in enumerate(dashboard_exprs())
    ]
    assert "$" not in json.dumps(rules)
    (tmp_path / "queries.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "q", "rules": rules}]})
    )
    result = subprocess.run(
        [str(promtool), "check", "rules", "queries.yaml"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# --- every metric named exists -------------------------------------------------------------------


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """The series names a registry exposes, from its families' names and types."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("_sum", "_count", ""),
        "info": ("_info",),
    }
    names = set()
    for family in registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def code_metric_names() -> set[str]:
    server = ServingMetrics("iris")
    server.watch_drift(lambda: None)
    return exposed_names(operator_metrics.REGISTRY) | exposed_names(server.registry)


def used_names(text: str) -> set[str]:
    return set(re.findall(r"\b(ctrain_[a-z0-9_]+)\b(?!:)", text))


def test_the_code_exports_the_names_this_test_knows() -> None:
    names = code_metric_names()
    assert {
        "ctrain_reconciliations_total",
        "ctrain_reconcile_errors_total",
        "ctrain_reconcile_duration_seconds_bucket",
        "ctrain_trainings_finished_total",
        "ctrain_objects",
        "ctrain_serving_requests_total",
        "ctrain_serving_drift_psi",
    } <= names
    assert "ctrain_reconciliations" not in names  # only the exposed series names


def test_every_metric_in_the_rules_and_the_dashboard_exists(helm: Path) -> None:
    rules_text = json.dumps(rule_groups(helm))
    used = used_names(rules_text) | used_names("\n".join(dashboard_exprs()))
    used -= {"ctrain_dashboard_query"}  # not a metric: the validity test's record names
    missing = used - code_metric_names() - set(PENDING_METRICS)
    assert missing == set(), (
        f"not exported by ctrain.controller.metrics or ctrain.serving.metrics: {missing}"
    )


def test_pending_metrics_are_documented() -> None:
    text = (ROOT / "docs" / "observability.md").read_text()
    for name in PENDING_METRICS:
        assert f"`{name}" in text, name
