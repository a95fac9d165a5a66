"""Live performance in the ModelDeployment reconciler: the check's Job, its result in
status, PerformanceDegraded (failing closed), Events, gauges and the prediction log's
options, against the recording fake with the registry in moto's S3 server over HTTP."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fakes import Harness

from ctrain.api import ModelDeploymentStatus, PerformanceMonitoringSpec
from ctrain.api.contracts import (
    ModelMetadata,
    PerformanceFailed,
    PerformanceMeasured,
    Reference,
    VersionPerformance,
)
from ctrain.controller import metrics
from ctrain.controller.config import OperatorConfig
from ctrain.controller.kube import DEPLOYMENTS, JOBS, MODELDEPLOYMENTS, PODS
from ctrain.controller.modeldeployment.checkjob import CHECK_LABEL, build_check_job
from ctrain.controller.modeldeployment.performance import apply_result
from ctrain.registry import Registry

pytest_plugins = ["s3_fixtures"]
pytestmark = pytest.mark.unit
NS = "ml"
T0 = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
MONITORING = {
    "predictionLog": {"enabled": True, "sampleRate": 0.5, "excludeColumns": ["ssn"]},
    "performance": {"enabled": True, "threshold": 0.8, "minSamples": 100, "intervalSeconds": 60},
}


def publish(registry: Registry) -> None:
    registry.publish(
        "iris", registry.reserve_version("iris"), b"m", ModelMetadata(), Reference(rows=1)
    )
    registry.set_champion("iris", "1", "test")


@pytest.fixture
def harness(moto_endpoint: str, s3_env: dict[str, str], bucket: str) -> Harness:
    config = OperatorConfig(
        s3_endpoint=moto_endpoint,
        default_bucket=bucket,
        s3_sse="AES256",
        s3_allow_http=True,  # moto on localhost
    )
    return Harness(config, now=T0)


def _md() -> dict[str, Any]:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "serving", "namespace": NS},
        "spec": {"model": "iris", "replicas": 1, "monitoring": MONITORING},
    }


def _serving(harness: Harness) -> None:
    body = harness.api.find(DEPLOYMENTS, NS, "serving")
    assert body is not None
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        **{k: 1 for k in ("replicas", "updatedReplicas", "availableReplicas", "readyReplicas")},
    }
    harness.api.put(DEPLOYMENTS, body)
    harness.drain()


def _start_serving(harness: Harness, registry: Registry) -> None:
    """A published model, the ModelDeployment applied and its Deployment available."""
    publish(registry)
    harness.api.put(MODELDEPLOYMENTS, _md())
    harness.drain()
    _serving(harness)


def _conclude(harness: Harness, message: str | None, *, failed: bool = False) -> None:
    """The Job controller's and the kubelet's part: a pod that ended, the Job concluded."""
    job = harness.api.find(JOBS, NS, "serving-perf")
    assert job is not None
    terminated: dict[str, Any] = {
        "exitCode": 1 if failed else 0,
        "finishedAt": "2026-03-01T10:01:00Z",
    }
    if message is not None:
        terminated["message"] = message
    harness.api.put(
        PODS,
        {
            "metadata": {
                "name": "serving-perf-abcde",
                "namespace": NS,
                "labels": {CHECK_LABEL: "serving"},
                "ownerReferences": [{"kind": "Job", "uid": job["metadata"]["uid"]}],
            },
            "status": {
                "containerStatuses": [{"name": "check", "state": {"terminated": terminated}}]
            },
        },
    )
    kind = "Failed" if failed else "Complete"
    job["status"] = {
        "conditions": [
            {"type": kind, "status": "True", "lastTransitionTime": "2026-03-01T10:01:00Z"}
        ]
    }
    harness.api.put(JOBS, job)
    harness.drain()


def _measured(value: float, labelled: int, version: str = "1") -> str:
    return PerformanceMeasured(
        model="iris",
        metric="accuracy",
        checked_at=T0 + timedelta(seconds=30),
        window_seconds=86400,
        samples=labelled + 10,
        labelled=labelled,
        versions=[
            VersionPerformance(
                version=version, value=value, samples=labelled + 10, labelled=labelled
            )
        ],
    ).model_dump_json(by_alias=True)


def _status(harness: Harness) -> dict[str, Any]:
    return harness.api.find(MODELDEPLOYMENTS, NS, "serving")["status"]


def _condition(harness: Harness) -> tuple[str, str]:
    found = [c for c in _status(harness)["conditions"] if c["type"] == "PerformanceDegraded"]
    return found[0]["status"], found[0]["reason"]


def _next_check(harness: Harness, seconds: float) -> None:
    harness.now += timedelta(seconds=seconds)
    body = harness.api.find(MODELDEPLOYMENTS, NS, "serving")
    body["metadata"].setdefault("annotations", {})["poke"] = str(seconds)
    harness.api.put(MODELDEPLOYMENTS, body)  # any event brings the object back
    harness.drain()


def test_a_check_runs_is_read_judged_and_its_job_removed(
    harness: Harness, registry: Registry
) -> None:
    _start_serving(harness, registry)

    server = harness.api.find(DEPLOYMENTS, NS, "serving")["spec"]["template"]["spec"]
    args = server["containers"][0]["args"]
    assert args[args.index("--prediction-log-sample-rate") + 1] == "0.5"
    assert "--prediction-log" in args and "ssn" in args
    assert {"name": "CTRAIN_S3_SSE", "value": "AES256"} in server["containers"][0]["env"]
    job = harness.api.find(JOBS, NS, "serving-perf")
    assert job is not None, harness.api.writes()
    assert _condition(harness) == ("Unknown", "PerformanceNotChecked")

    harness.api.reset()
    _conclude(harness, _measured(0.62, 300))

    assert _condition(harness) == ("True", "WorseThanThreshold")
    performance = _status(harness)["performance"]
    assert (performance["value"], performance["labelled"], performance["degraded"]) == (
        0.62,
        300,
        True,
    )
    assert performance["degradedSince"] == performance["checkedAt"]
    assert harness.api.find(JOBS, NS, "serving-perf") is None  # deleted once read
    assert [e[1] for e in harness.api.events] == ["WorseThanThreshold"]
    assert harness.api.events[0][3] is True  # a Warning
    gauge = metrics.PERFORMANCE_DEGRADED.labels(NS, "serving", "iris")._value.get()
    assert gauge == 1
    live = metrics.MODEL_PERFORMANCE.labels(NS, "serving", "iris", "1", "accuracy")
    assert live._value.get() == 0.62

    # Not due yet: no Job. Due: a new one, of the same name.
    _next_check(harness, 10)
    assert harness.api.find(JOBS, NS, "serving-perf") is None
    _next_check(harness, 100)  # checkedAt (the pod's clock) was T0 + 30 s
    assert harness.api.find(JOBS, NS, "serving-perf") is not None

    # The same episode while it stays degraded; a recovery ends it.
    since = performance["degradedSince"]
    _conclude(harness, _measured(0.6, 300).replace("10:01:00", "10:02:00"))
    assert _status(harness)["performance"]["degradedSince"] == since
    _next_check(harness, 100)
    _conclude(harness, _measured(0.95, 300))
    assert _condition(harness) == ("False", "WithinThreshold")
    assert "degradedSince" not in _status(harness)["performance"]
    assert metrics.PERFORMANCE_DEGRADED.labels(NS, "serving", "iris")._value.get() == 0


def test_a_deleted_deployment_takes_its_performance_series_with_it(
    harness: Harness, registry: Registry
) -> None:
    _start_serving(harness, registry)
    _conclude(harness, _measured(0.62, 300))
    # Another deployment of the same name elsewhere keeps its series.
    metrics.PERFORMANCE_DEGRADED.labels("elsewhere", "serving", "iris").set(1)
    series = {"namespace": NS, "deployment": "serving", "model": "iris"}
    live = {**series, "version": "1", "metric": "accuracy"}
    assert metrics.REGISTRY.get_sample_value("ctrain_model_performance_degraded", series) == 1
    assert metrics.REGISTRY.get_sample_value("ctrain_model_performance", live) == 0.62

    harness.api.remove(MODELDEPLOYMENTS, NS, "serving")  # the watch's DELETED event
    harness.drain()

    assert metrics.REGISTRY.get_sample_value("ctrain_model_performance_degraded", series) is None
    assert metrics.REGISTRY.get_sample_value("ctrain_model_performance", live) is None
    elsewhere = {**series, "namespace": "elsewhere"}
    assert metrics.REGISTRY.get_sample_value("ctrain_model_performance_degraded", elsewhere) == 1
    metrics.PERFORMANCE_DEGRADED.remove("elsewhere", "serving", "iris")


def test_too_few_labels_and_failed_checks_are_unknown(harness: Harness, registry: Registry) -> None:
    _start_serving(harness, registry)
    _conclude(harness, _measured(0.1, 20))
    assert _condition(harness) == ("Unknown", "NotEnoughLabels")
    assert "degraded" not in _status(harness)["performance"]  # null: not judged

    _next_check(harness, 100)
    failed = PerformanceFailed(reason="StorageError", message="access denied")
    _conclude(harness, failed.model_dump_json(), failed=True)
    assert _condition(harness) == ("Unknown", "PerformanceCheckFailed")

    _next_check(harness, 100)
    _conclude(harness, "Traceback (most recent call last): boom", failed=True)
    status, reason = _condition(harness)
    assert (status, reason) == ("Unknown", "PerformanceCheckFailed")


def test_turning_performance_off_clears_status_and_the_running_check(
    harness: Harness, registry: Registry
) -> None:
    _start_serving(harness, registry)
    assert harness.api.find(JOBS, NS, "serving-perf") is not None
    body = harness.api.find(MODELDEPLOYMENTS, NS, "serving")
    body["spec"]["monitoring"]["performance"]["enabled"] = False
    harness.api.put(MODELDEPLOYMENTS, body)
    harness.drain()
    assert harness.api.find(JOBS, NS, "serving-perf") is None
    status = _status(harness)
    assert "performance" not in status
    assert all(c["type"] != "PerformanceDegraded" for c in status["conditions"])


def _performance(**changes: Any) -> PerformanceMonitoringSpec:
    return PerformanceMonitoringSpec.model_validate({"enabled": True, "threshold": 10, **changes})


def test_an_error_metric_is_degraded_above_its_threshold() -> None:
    status = ModelDeploymentStatus(current_version="2")
    result = PerformanceMeasured(
        model="m",
        metric="rmse",
        checked_at=T0,
        window_seconds=60,
        samples=500,
        labelled=500,
        versions=[VersionPerformance(version="2", value=12.5, samples=500, labelled=500)],
    )
    judgement = apply_result(status, _performance(metric="rmse"), result, at=T0)
    assert judgement.degraded is True
    assert status.performance is not None and status.performance.degraded_since == T0


def test_a_version_that_served_nothing_yet_is_not_judged() -> None:
    status = ModelDeploymentStatus(current_version="3")
    result = PerformanceMeasured(
        model="m",
        metric="accuracy",
        checked_at=T0,
        window_seconds=60,
        samples=500,
        labelled=500,
        versions=[VersionPerformance(version="2", value=0.1, samples=500, labelled=500)],
    )
    judgement = apply_result(status, _performance(threshold=0.9), result, at=T0)
    assert judgement.degraded is None
    assert status.performance is not None and status.performance.labelled == 0


def test_the_check_pod_is_restricted_and_has_no_api_credentials() -> None:
    body = _md()
    body["metadata"]["uid"] = "u1"
    from ctrain.api import ModelDeploymentSpec

    spec = ModelDeploymentSpec.parse(body["spec"])
    assert spec.monitoring.performance is not None
    job = build_check_job(body, spec, spec.monitoring.performance, OperatorConfig())
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["command"] == ["ctrain", "evaluate-live"]
    assert "--window-seconds" in container["args"]
    secrets = [e for e in container["env"] if "valueFrom" in e]
    assert all("secretKeyRef" in e["valueFrom"] for e in secrets)
