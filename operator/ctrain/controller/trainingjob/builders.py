"""Pure builder of the batch/v1 Job that runs one TrainingJob's trainer.

The user's spec reaches the trainer as a file, never in `command`/`args`: the kubelet
expands `$(VAR)` in args with the container's environment, which holds the S3 keys from
the Secret, so a spec in args could make the trainer echo a key into status. The spec is
an annotation of the pod template, projected by the downward API into a read-only file
(annotations are not expanded, and the file lives and dies with the pod: nothing to clean
up).
"""

import json
from typing import Any

from ctrain.api import TrainingJobSpec
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
    "MODEL_LABEL",
    "SPEC_ANNOTATION",
    "SPEC_PATH",
    "TRAININGJOB_LABEL",
    "build_job",
    "job_name",
    "trainer_spec",
]

TRAININGJOB_LABEL = "ctrain.dev/trainingjob"
MODEL_LABEL = "ctrain.dev/model"
SPEC_ANNOTATION = "ctrain.dev/trainer-spec"
SPEC_DIR = "/etc/ctrain/spec"
SPEC_PATH = f"{SPEC_DIR}/spec.json"
# `ctrain train` exits 10 (invalid spec), 11 (invalid data) or 12 (the estimator failed on
# this data) when a retry would fail the same way: the Job fails at once instead of
# retrying up to backoffLimit. An evicted or preempted pod does not count as a failure.
DETERMINISTIC_EXIT_CODES = [10, 11, 12]
POD_FAILURE_POLICY = {
    "rules": [
        {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": "trainer",
                "operator": "In",
                "values": DETERMINISTIC_EXIT_CODES,
            },
        },
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
    ]
}


def job_name(trainingjob_name: str) -> str:
    return child_name(trainingjob_name, "train")


def trainer_spec(spec: TrainingJobSpec, config: OperatorConfig) -> dict[str, Any]:
    """The spec the trainer receives: the user's spec with storage defaults resolved."""
    wire = spec.to_wire()
    storage = storage_settings(spec.storage, config)
    # The trainer learns the endpoint and addressing style from its environment.
    pod_only = ("endpoint", "addressingStyle")
    wire["storage"] = {k: v for k, v in storage.items() if v is not None and k not in pod_only}
    return wire


def build_job(body: Any, spec: TrainingJobSpec, config: OperatorConfig) -> dict[str, Any]:
    job = _job(body, spec, config)
    job["spec"]["template"] = with_pod_controls(
        job["spec"]["template"], spec.pod, config.trainer_resources
    )
    return job


def _job(body: Any, spec: TrainingJobSpec, config: OperatorConfig) -> dict[str, Any]:
    metadata = body["metadata"]
    name, namespace = metadata["name"], metadata["namespace"]
    labels = {
        **MANAGED_BY,
        "app.kubernetes.io/name": "ctrain-trainer",
        TRAININGJOB_LABEL: name,
        MODEL_LABEL: spec.model,
    }
    storage = storage_settings(spec.storage, config)
    env = [
        {"name": "CTRAIN_TRAININGJOB_NAME", "value": name},
        {"name": "CTRAIN_TRAININGJOB_NAMESPACE", "value": namespace},
        {"name": "CTRAIN_TRAININGJOB_UID", "value": metadata["uid"]},
        {"name": "HOME", "value": SCRATCH_DIR},
        {"name": "TMPDIR", "value": SCRATCH_DIR},
        *storage_env(storage),
    ]
    volume, mount = scratch_volume()
    spec_volume = {
        "name": "spec",
        "downwardAPI": {
            "items": [
                {
                    "path": "spec.json",
                    "fieldRef": {"fieldPath": f"metadata.annotations['{SPEC_ANNOTATION}']"},
                }
            ]
        },
    }
    spec_mount = {"name": "spec", "mountPath": SPEC_DIR, "readOnly": True}
    container = {
        "name": "trainer",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["ctrain", "train"],
        "args": ["--spec-file", SPEC_PATH],
        "env": env,
        "resources": spec.resources.to_wire(),
        "securityContext": CONTAINER_SECURITY_CONTEXT,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [mount, spec_mount],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(body)],
        },
        "spec": {
            "backoffLimit": spec.backoff_limit,
            # With a podFailurePolicy a replacement pod starts only once the old one has
            # failed (podReplacementPolicy Failed): two attempts never run at once.
            "podFailurePolicy": POD_FAILURE_POLICY,
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        SPEC_ANNOTATION: json.dumps(trainer_spec(spec, config), sort_keys=True)
                    },
                },
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,  # the trainer needs no API access
                    "enableServiceLinks": False,
                    "securityContext": POD_SECURITY_CONTEXT,
                    "containers": [container],
                    "volumes": [volume, spec_volume],
                },
            },
        },
    }
