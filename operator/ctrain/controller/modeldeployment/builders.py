"""Pure builders of a ModelDeployment's children: the Service and the stable/canary Deployments.

Every pod carries the resolved model version in its template (label and `--version`), so a
version change is a Deployment rollout; `maxUnavailable: 0` and a readiness probe on
`/v2/health/ready` keep serving capacity during it, and a preStop pause lets endpoints
drop a terminating pod before its server stops.
"""

import hashlib
import json
from typing import Any

from ctrain.api import ModelDeploymentSpec
from ctrain.controller.config import OperatorConfig
from ctrain.controller.names import child_name
from ctrain.controller.podspec import (
    CONTAINER_SECURITY_CONTEXT,
    MANAGED_BY,
    POD_SECURITY_CONTEXT,
    SCRATCH_DIR,
    owner_reference,
    scratch_volume,
    storage_env,
    storage_settings,
    with_pod_controls,
)

__all__ = [
    "DEPLOYMENT_LABEL",
    "HTTP_PORT",
    "PRESTOP_SECONDS",
    "SPEC_HASH",
    "TRACK_LABEL",
    "VERSION_LABEL",
    "build_deployment",
    "build_service",
    "deployment_name",
    "endpoint",
    "prediction_log_args",
    "selector",
    "service_name",
]

DEPLOYMENT_LABEL = "ctrain.dev/modeldeployment"
VERSION_LABEL = "ctrain.dev/model-version"
TRACK_LABEL = "ctrain.dev/track"
SPEC_HASH = "ctrain.dev/spec-hash"
HTTP_PORT = 8080
PRESTOP_SECONDS = 3


def deployment_name(md_name: str, track: str) -> str:
    return md_name if track == "stable" else child_name(md_name, "canary")


def service_name(md_name: str) -> str:
    return md_name


def selector(md_name: str) -> dict[str, str]:
    return {DEPLOYMENT_LABEL: md_name}


def endpoint(md_name: str, namespace: str, model: str) -> str:
    return f"http://{service_name(md_name)}.{namespace}.svc.cluster.local/v2/models/{model}"


def build_service(body: Any, spec: ModelDeploymentSpec) -> dict[str, Any]:
    name = body["metadata"]["name"]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(name),
            "namespace": body["metadata"]["namespace"],
            "labels": {**MANAGED_BY, DEPLOYMENT_LABEL: name},
            "ownerReferences": [owner_reference(body)],
        },
        "spec": {
            "selector": selector(name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def prediction_log_args(spec: ModelDeploymentSpec) -> list[str]:
    """`ctrain serve`'s prediction log options from `spec.monitoring.predictionLog`."""
    log = spec.monitoring.prediction_log
    if log is None or not log.enabled:
        return []
    args = [
        "--prediction-log",
        "--prediction-log-sample-rate",
        repr(float(log.sample_rate)),
        "--prediction-log-flush-seconds",
        str(log.flush_seconds),
    ]
    if log.exclude_columns:
        args += ["--prediction-log-exclude-columns", ",".join(sorted(log.exclude_columns))]
    return args


def build_deployment(
    body: Any,
    spec: ModelDeploymentSpec,
    config: OperatorConfig,
    *,
    track: str,
    version: str,
    replicas: int,
) -> dict[str, Any]:
    name, namespace = body["metadata"]["name"], body["metadata"]["namespace"]
    labels = {
        **MANAGED_BY,
        "app.kubernetes.io/name": "ctrain-server",
        DEPLOYMENT_LABEL: name,
        "ctrain.dev/model": spec.model,
        TRACK_LABEL: track,
    }
    pod_labels = {**labels, VERSION_LABEL: version}
    storage = storage_settings(spec.storage, config)
    volume, mount = scratch_volume()
    probe = {
        "httpGet": {"path": "/v2/health/ready", "port": "http"},
        "periodSeconds": 2,
        "failureThreshold": 2,
        "timeoutSeconds": 2,
    }
    container = {
        "name": "server",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["ctrain", "serve"],
        "args": [
            "--model",
            spec.model,
            "--version",
            version,
            "--port",
            str(HTTP_PORT),
            *prediction_log_args(spec),
        ],
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            # Names the prediction log's objects, one writer per pod.
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "HOME", "value": SCRATCH_DIR},
            {"name": "TMPDIR", "value": SCRATCH_DIR},
            *storage_env(storage),
        ],
        "ports": [{"name": "http", "containerPort": HTTP_PORT, "protocol": "TCP"}],
        "readinessProbe": probe,
        "livenessProbe": {
            "httpGet": {"path": "/v2/health/live", "port": "http"},
            "periodSeconds": 10,
            "failureThreshold": 3,
            "timeoutSeconds": 2,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
        "resources": spec.resources.to_wire(),
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        "volumeMounts": [mount],
    }
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(name, track),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(body)],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {DEPLOYMENT_LABEL: name, TRACK_LABEL: track}},
            "progressDeadlineSeconds": spec.progress_deadline_seconds,
            "revisionHistoryLimit": 3,
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": False,  # the server needs no API access
                    "enableServiceLinks": False,
                    "terminationGracePeriodSeconds": 30,
                    "securityContext": POD_SECURITY_CONTEXT,
                    "containers": [container],
                    "volumes": [volume],
                },
            },
        },
    }
    template = manifest["spec"]["template"]
    manifest["spec"]["template"] = with_pod_controls(template, spec.pod, config.server_resources)
    digest = hashlib.sha256(json.dumps(manifest["spec"], sort_keys=True).encode()).hexdigest()
    manifest["metadata"]["annotations"] = {SPEC_HASH: digest[:16]}
    return manifest
