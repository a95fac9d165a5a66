"""Reconcile one ModelDeployment: resolve the version, apply Service and Deployments, report.

Called on every event of the ModelDeployment or its children, and by the resync loop
every few seconds, which is how an alias that moved in the registry (a new champion) is
noticed without any change in the cluster.
"""

import logging
import time
from typing import Any

from pydantic import ValidationError

from ctrain.api import ConditionType, ModelDeployment, ModelDeploymentSpec, Reason
from ctrain.api.common import validation_message
from ctrain.controller import metrics
from ctrain.controller.conditions import changed_conditions, set_condition
from ctrain.controller.config import OperatorConfig
from ctrain.controller.kube import Kube
from ctrain.controller.modeldeployment import probe
from ctrain.controller.modeldeployment.builders import (
    DEPLOYMENT_LABEL,
    HTTP_PORT,
    SPEC_HASH,
    TRACK_LABEL,
    VERSION_LABEL,
    build_deployment,
    build_service,
    deployment_name,
    endpoint,
    selector,
)
from ctrain.controller.modeldeployment.plan import Observed, Track, plan
from ctrain.controller.podspec import storage_settings
from ctrain.registry import Registry, RegistryError
from ctrain.storage import make_s3_client

__all__ = ["PLURAL", "reconcile", "resolve"]

log = logging.getLogger("ctrain.operator")
PLURAL = ModelDeployment.PLURAL
_last_drift_check: dict[str, float] = {}


def _track(deployment: dict[str, Any] | None) -> Track | None:
    if deployment is None:
        return None
    spec, status = deployment["spec"], deployment.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
    complete = (
        current
        and all(
            int(status.get(key) or 0) == replicas
            for key in ("updatedReplicas", "replicas", "availableReplicas")
        )
        and not status.get("unavailableReplicas")
    )
    exceeded = current and any(
        c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )
    return Track(
        version=deployment["spec"]["template"]["metadata"]["labels"][VERSION_LABEL],
        replicas=replicas,
        ready=int(status.get("readyReplicas") or 0),
        complete=complete,
        deadline_exceeded=exceeded,
    )


def _registry(spec: ModelDeploymentSpec, config: OperatorConfig) -> Registry:
    storage = storage_settings(spec.storage, config)
    client = make_s3_client(endpoint_url=storage["endpoint"], region_name=storage["region"])
    return Registry(client, storage["bucket"], storage["prefix"])


def resolve(spec: ModelDeploymentSpec, config: OperatorConfig) -> tuple[str | None, str | None]:
    """(version, None) or (None, why not) for the requested `version`."""
    try:
        registry = _registry(spec, config)
        version = registry.resolve(spec.model, spec.version)
        registry.metadata(spec.model, version)  # an explicit version must exist and be complete
    except RegistryError as error:
        return None, f"{Reason.VERSION_NOT_FOUND}: model {spec.model} {spec.version}: {error}"
    return version, None


def reconcile(kube: Kube, config: OperatorConfig, namespace: str, name: str) -> None:
    with kube.locked(PLURAL, namespace, name) as body:
        if body is not None:
            _reconcile_locked(kube, config, body)


def _reconcile_locked(kube: Kube, config: OperatorConfig, body: dict[str, Any]) -> None:
    old = body.get("status") or {}
    generation = body["metadata"].get("generation", 1)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        spec = ModelDeploymentSpec.parse(body.get("spec") or {})
    except ValidationError as error:
        message = validation_message(error)
        conditions = set_condition(
            old.get("conditions") or [],
            ConditionType.READY,
            False,
            Reason.INVALID_SPEC,
            message,
            generation,
        )
        _write(
            kube,
            body,
            old,
            {
                **old,
                "phase": "Degraded",
                "message": message,
                "observedGeneration": generation,
                "conditions": conditions,
            },
        )
        return
    kube.create(kube.core.create_namespaced_service, namespace, build_service(body, spec))
    desired, resolve_error = resolve(spec, config)
    stable_name, canary_name = deployment_name(name, "stable"), deployment_name(name, "canary")
    stable = kube.read_or_none(kube.apps.read_namespaced_deployment, stable_name, namespace)
    canary = kube.read_or_none(kube.apps.read_namespaced_deployment, canary_name, namespace)
    requests = errors = 0
    pods = kube.raw(
        kube.core.list_namespaced_pod, namespace, label_selector=f"{DEPLOYMENT_LABEL}={name}"
    )["items"]
    if canary is not None:
        canary_pods = [p for p in pods if p["metadata"]["labels"].get(TRACK_LABEL) == "canary"]
        requests, errors = probe.canary_counts(probe.ready_pod_ips(canary_pods), HTTP_PORT)
    seen = Observed(desired, resolve_error, _track(stable), _track(canary), requests, errors)
    result = plan(spec, old, seen, generation)
    if result.stable is not None:
        version, replicas = result.stable
        _apply(
            kube,
            stable,
            build_deployment(
                body, spec, config, track="stable", version=version, replicas=replicas
            ),
        )
    if result.canary is not None:
        version, replicas = result.canary
        _apply(
            kube,
            canary,
            build_deployment(
                body, spec, config, track="canary", version=version, replicas=replicas
            ),
        )
    elif canary is not None:
        kube.delete(kube.apps.delete_namespaced_deployment, canary_name, namespace)
    status = result.status
    status["selector"] = ",".join(f"{k}={v}" for k, v in selector(name).items())
    status["endpoint"] = endpoint(name, namespace, spec.model)
    if spec.monitoring.drift.enabled:
        _check_drift(spec, status, body, pods)
    else:
        status.pop("drift", None)
    for reason, message, warning in result.events:
        if reason in (Reason.ROLLED_BACK, Reason.CANARY_FAILED):
            metrics.ROLLBACKS.labels(reason).inc()
        kube.event(body, reason, message, warning=warning)
    _write(kube, body, old, status)


def _apply(kube: Kube, existing: dict[str, Any] | None, manifest: dict[str, Any]) -> None:
    namespace = manifest["metadata"]["namespace"]
    if existing is None:
        kube.create(kube.apps.create_namespaced_deployment, namespace, manifest)
        return
    if (existing["metadata"].get("annotations") or {}).get(SPEC_HASH) == manifest["metadata"][
        "annotations"
    ][SPEC_HASH]:
        return
    kube.apps.patch_namespaced_deployment(manifest["metadata"]["name"], namespace, manifest)


def _check_drift(
    spec: ModelDeploymentSpec,
    status: dict[str, Any],
    body: dict[str, Any],
    pods: list[dict[str, Any]],
) -> None:
    drift = spec.monitoring.drift
    uid = body["metadata"]["uid"]
    now = time.monotonic()
    if now - _last_drift_check.get(uid, 0.0) < drift.interval_seconds and status.get("drift"):
        return
    _last_drift_check[uid] = now
    current = status.get("currentVersion")
    serving = [p for p in pods if p["metadata"]["labels"].get(VERSION_LABEL) == current]
    reports = probe.drift_reports(probe.ready_pod_ips(serving), HTTP_PORT)
    if not reports:
        return
    combined = probe.combine_drift(reports, drift.threshold, drift.min_samples)
    status["drift"] = combined
    generation = status.get("observedGeneration")
    samples, score = combined["samples"], combined["score"]
    if combined["detected"]:
        reason, message = (
            Reason.DRIFT_DETECTED,
            (f"drift score {score:.3f} above {drift.threshold} over {samples} served rows"),
        )
    elif samples < drift.min_samples:
        reason = Reason.NOT_ENOUGH_SAMPLES
        message = f"{samples} served rows of the {drift.min_samples} needed to judge drift"
    else:
        reason, message = Reason.NO_DRIFT, f"drift score {score:.3f} within {drift.threshold}"
    status["conditions"] = set_condition(
        status.get("conditions") or [],
        ConditionType.DRIFT_DETECTED,
        bool(combined["detected"]),
        reason,
        message,
        generation,
    )


def _write(kube: Kube, body: dict[str, Any], old: dict[str, Any], status: dict[str, Any]) -> None:
    if not kube.patch_status(PLURAL, body, status):
        return
    if old.get("phase") != status.get("phase"):
        kube.event(
            body,
            str(status.get("phase")),
            status.get("message") or "",
            warning=status.get("phase") == "Degraded",
        )
    for condition in changed_conditions(old.get("conditions"), status.get("conditions") or []):
        if condition["type"] == ConditionType.DRIFT_DETECTED and condition["status"] == "True":
            kube.event(body, condition["reason"], condition["message"], warning=True)
