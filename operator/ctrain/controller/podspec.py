"""Pure pieces every pod the operator creates shares: Pod Security `restricted`, storage env.

Credentials reach pods only through `secretKeyRef`; the operator never reads a Secret.
The kubelet expands `$(VAR)` in env values, command and args with the container's
environment (which holds those credentials): every value taken from a user's spec is
`literal`, with `$` doubled, so it reaches the process as written.
"""

import copy
from collections.abc import Mapping
from typing import Any

from ctrain.api import PodControls, StorageSpec
from ctrain.api.common import storage_location
from ctrain.controller.config import OperatorConfig
from ctrain.storage import SSE_ENV, SSE_KMS_KEY_ENV

__all__ = [
    "ACCESS_KEY",
    "CONTAINER_SECURITY_CONTEXT",
    "MANAGED_BY",
    "POD_SECURITY_CONTEXT",
    "SCRATCH_DIR",
    "SECRET_KEY",
    "literal",
    "owner_reference",
    "scratch_volume",
    "storage_env",
    "storage_settings",
    "with_pod_controls",
]

MANAGED_BY = {"app.kubernetes.io/managed-by": "ctrain"}
ACCESS_KEY, SECRET_KEY = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
SCRATCH_DIR = "/var/tmp"  # writable scratch space on a read-only root filesystem

POD_SECURITY_CONTEXT: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "runAsGroup": 65532,
    "fsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY_CONTEXT: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def storage_settings(storage: StorageSpec | None, config: OperatorConfig) -> dict[str, Any]:
    """The effective storage of an object: its own `storage` over the operator's defaults."""
    bucket, prefix = storage_location(
        storage, default_bucket=config.default_bucket, default_prefix=config.default_prefix
    )
    return {
        "bucket": bucket,
        "prefix": prefix,
        "secretRef": (storage and storage.secret_ref) or config.default_secret,
        "endpoint": (storage and storage.endpoint) or config.s3_endpoint,
        "region": (storage and storage.region) or config.s3_region,
        "addressingStyle": (storage and storage.addressing_style) or config.s3_addressing_style,
        "encryption": (storage.encryption.to_wire() if storage and storage.encryption else None)
        or config.default_encryption(),
    }


def literal(text: str) -> str:
    """`text` escaped for Kubernetes' `$(VAR)` expansion (`$$` is a literal `$`)."""
    return text.replace("$", "$$")


def storage_env(storage: dict[str, Any]) -> list[dict[str, Any]]:
    """Environment for boto3 in a pod: endpoint and region as values, keys from the Secret."""
    env: list[dict[str, Any]] = [
        {"name": "AWS_DEFAULT_REGION", "value": literal(storage["region"])},
        {"name": "CTRAIN_S3_ADDRESSING_STYLE", "value": storage["addressingStyle"]},
        {"name": "CTRAIN_BUCKET", "value": storage["bucket"]},
        {"name": "CTRAIN_PREFIX", "value": literal(storage["prefix"])},
    ]
    if storage.get("endpoint"):
        env.append({"name": "AWS_ENDPOINT_URL", "value": literal(storage["endpoint"])})
    encryption = storage.get("encryption") or {}
    if encryption:
        env.append({"name": SSE_ENV, "value": encryption["type"]})
    if encryption.get("kmsKeyId"):
        env.append({"name": SSE_KMS_KEY_ENV, "value": literal(encryption["kmsKeyId"])})
    if storage.get("secretRef"):
        for key in (ACCESS_KEY, SECRET_KEY):
            env.append(
                {
                    "name": key,
                    "valueFrom": {"secretKeyRef": {"name": storage["secretRef"], "key": key}},
                }
            )
    return env


def scratch_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """An emptyDir for temporary files (the root filesystem is read-only)."""
    return {"name": "scratch", "emptyDir": {}}, {"name": "scratch", "mountPath": SCRATCH_DIR}


def owner_reference(body: Any) -> dict[str, Any]:
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def with_pod_controls(
    template: dict[str, Any], pod: PodControls | None, default_resources: Mapping[str, Any]
) -> dict[str, Any]:
    """`template` (a pod template ctrain built, one container) with a user's pod controls
    (`spec.pod`) and, when the object sets no `resources`, the operator's default ones.

    ctrain's own labels win over the user's (the CRD already refuses its keys), and the
    security settings are never touched: the controls choose where and as what the pod
    runs, not how much it may do.
    """
    result = copy.deepcopy(template)
    container = result["spec"]["containers"][0]
    if not container.get("resources"):
        container["resources"] = copy.deepcopy(dict(default_resources))
    if pod is None:
        return result
    wire = pod.to_wire()
    for key in _POD_FIELDS:
        if wire.get(key):
            result["spec"][key] = wire[key]
    metadata = result.setdefault("metadata", {})
    if pod.labels:
        metadata["labels"] = {**pod.labels, **metadata.get("labels", {})}
    if pod.annotations:
        metadata["annotations"] = {**pod.annotations, **metadata.get("annotations", {})}
    return result


_POD_FIELDS = (
    "nodeSelector",
    "tolerations",
    "affinity",
    "serviceAccountName",
    "imagePullSecrets",
    "priorityClassName",
)
