"""Pure pieces of the live-performance check: its Job, and its result read from the pod.

One Job per ModelDeployment at a time, always of the same name (`<md>-perf`): a second
check can never start while one runs, and a pass repeated after a crash finds the Job it
created. The operator deletes it once its result is in status, so at most one Job (and
its pod) exists per ModelDeployment; `ttlSecondsAfterFinished` removes a finished one the
operator did not get to. The pod is the trainer's: the ctrain image, Pod Security
`restricted`, the storage Secret for credentials, no service-account token.
"""

from typing import Any

from pydantic import ValidationError

from ctrain.api import ModelDeploymentSpec, PerformanceMonitoringSpec, Reason
from ctrain.api.contracts import (
    PerformanceFailed,
    PerformanceMeasured,
    parse_performance_result,
)
from ctrain.controller.config import OperatorConfig
from ctrain.controller.names import child_name, label_value
from ctrain.controller.podspec import (
    CONTAINER_SECURITY_CONTEXT,
    MANAGED_BY,
    POD_SECURITY_CONTEXT,
    SCRATCH_DIR,
    owner_reference,
    scratch_volume,
    storage_env,
    storage_settings,
)

__all__ = [
    "CHECK_LABEL",
    "CONTAINER",
    "build_check_job",
    "check_job_name",
    "check_result",
]

CHECK_LABEL = "ctrain.dev/performance-check"
CONTAINER = "check"
# A check that runs longer than this is cut short (and reported as failed): a stuck
# read must not keep the next checks from starting.
DEADLINE_SECONDS = 900
TTL_SECONDS = 3600
EXIT_INVALID = 10  # `ctrain evaluate-live`: the check cannot be done as asked; no retry
Body = dict[str, Any]


def check_job_name(md_name: str) -> str:
    return child_name(md_name, "perf")


def build_check_job(
    body: Body,
    spec: ModelDeploymentSpec,
    performance: PerformanceMonitoringSpec,
    config: OperatorConfig,
) -> Body:
    metadata = body["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    labels = {
        **MANAGED_BY,
        "app.kubernetes.io/name": "ctrain-performance-check",
        CHECK_LABEL: label_value(name),
        "ctrain.dev/model": label_value(spec.model),
    }
    args = ["--model", spec.model, "--window-seconds", str(performance.window_seconds)]
    if performance.metric is not None:
        args += ["--metric", performance.metric.value]
    storage = storage_settings(spec.storage, config)
    volume, mount = scratch_volume()
    container = {
        "name": CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["ctrain", "evaluate-live"],
        "args": args,
        "env": [
            {"name": "HOME", "value": SCRATCH_DIR},
            {"name": "TMPDIR", "value": SCRATCH_DIR},
            *storage_env(storage),
        ],
        "resources": spec.resources.to_wire(),
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [mount],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": check_job_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(body)],
        },
        "spec": {
            "backoffLimit": 1,  # one retry for a storage hiccup; the next check comes anyway
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": CONTAINER,
                            "operator": "In",
                            "values": [EXIT_INVALID],
                        },
                    },
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
                ]
            },
            "activeDeadlineSeconds": DEADLINE_SECONDS,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,  # the check needs no API access
                    "enableServiceLinks": False,
                    "securityContext": POD_SECURITY_CONTEXT,
                    "containers": [container],
                    "volumes": [volume],
                },
            },
        },
    }


def _terminated(pod: Body) -> Body | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == CONTAINER:
            found: Body | None = (container.get("state") or {}).get("terminated")
            return found
    return None


def check_result(job: Body, pods: list[Body]) -> PerformanceMeasured | PerformanceFailed:
    """The concluded Job's outcome: the newest pod's termination message, or why none
    can be read (never a guess: a missing or malformed result is a failed check)."""
    finished = [t for t in (_terminated(p) for p in pods) if t is not None]
    finished.sort(key=lambda t: t.get("finishedAt") or "")
    last = finished[-1] if finished else None
    if last is not None and last.get("message"):
        try:
            return parse_performance_result(last["message"])
        except ValidationError:
            detail = str(last["message"]).strip()[-300:]
            return PerformanceFailed(
                reason=Reason.PERFORMANCE_CHECK_FAILED.value,
                message=f"the check exited {last.get('exitCode')} without a result: {detail}",
            )
    reasons = [
        f"{c.get('reason')}: {c.get('message')}"
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("type") == "Failed" and c.get("status") == "True"
    ]
    return PerformanceFailed(
        reason=Reason.PERFORMANCE_CHECK_FAILED.value,
        message="the check's Job ended without a result"
        + (f" ({'; '.join(reasons)})" if reasons else ""),
    )
