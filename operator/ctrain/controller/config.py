"""The operator's configuration, read once from its environment.

Storage defaults apply to every TrainingJob and ModelDeployment that does not set its own
`storage`; credentials are only ever named (a Secret in the object's namespace), never read.
"""

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

from ctrain.api.common import DEFAULT_BUCKET, DEFAULT_PREFIX
from ctrain.storage import encryption_args

__all__ = ["ANY_BUCKET", "OperatorConfig", "StorageGrant"]

ANY_BUCKET = "*"


@dataclasses.dataclass(frozen=True)
class StorageGrant:
    """One entry of the operator's S3 allowlist: buckets on an endpoint (None: AWS S3)."""

    endpoint: str | None
    buckets: tuple[str, ...]

    def allows(self, endpoint: str | None, bucket: str) -> bool:
        same = (self.endpoint or None) == (endpoint or None)
        return same and (ANY_BUCKET in self.buckets or bucket in self.buckets)


def _sse(kind: str, kms_key_id: str | None) -> str:
    """The default encryption type, checked at start (a typo must not mean unencrypted)."""
    encryption_args(kind, kms_key_id)  # raises ValueError for an unknown type
    return kind


def _grants(text: str) -> tuple[StorageGrant, ...]:
    """`CTRAIN_S3_ALLOWED`: a JSON list of {endpoint, buckets}; a malformed value stops the
    operator at start rather than widening or silently narrowing what it may read."""
    entries = json.loads(text)
    if not isinstance(entries, list):
        raise ValueError("CTRAIN_S3_ALLOWED must be a JSON list of {endpoint, buckets}")
    grants = []
    for entry in entries:
        buckets = entry.get("buckets") if isinstance(entry, dict) else None
        if not isinstance(buckets, list) or not all(isinstance(b, str) for b in buckets):
            raise ValueError(f"CTRAIN_S3_ALLOWED: {entry!r} needs a list of buckets")
        grants.append(StorageGrant(entry.get("endpoint") or None, tuple(buckets)))
    return tuple(grants)


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    image: str = "ctrain/ctrain:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    s3_endpoint: str | None = None  # None: AWS S3 itself
    s3_region: str = "us-east-1"
    s3_addressing_style: str = "path"
    default_bucket: str = DEFAULT_BUCKET
    default_prefix: str = DEFAULT_PREFIX
    default_secret: str | None = "s3-credentials"  # keys AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
    watch_namespaces: tuple[str, ...] = ()  # empty: every namespace
    # How often a followed champion alias is read again (a conditional request): the delay
    # before a champion moved outside the cluster (`ctrain models promote`) rolls out.
    registry_poll_seconds: float = 5.0
    # What the operator may read with its own credentials besides the default storage
    # (its bucket on its endpoint), whatever endpoint or bucket an object names.
    s3_allowed: tuple[StorageGrant, ...] = ()
    # Plain-HTTP S3 endpoints send keys and data unencrypted: refused unless allowed.
    s3_allow_http: bool = False
    # Server-side encryption of objects whose storage names none: None | AES256 | aws:kms.
    s3_sse: str = "None"
    s3_sse_kms_key_id: str | None = None

    def default_encryption(self) -> dict[str, str] | None:
        """`storage.encryption` for objects that set none (None: the bucket's default)."""
        if self.s3_sse == "None":
            return None
        found = {"type": self.s3_sse}
        if self.s3_sse_kms_key_id:
            found["kmsKeyId"] = self.s3_sse_kms_key_id
        return found

    def storage_allowed(self, endpoint: str | None, bucket: str) -> bool:
        """Whether the operator may send requests to `bucket` on `endpoint` (None: AWS)."""
        default = StorageGrant(self.s3_endpoint, (self.default_bucket,))
        return any(grant.allows(endpoint, bucket) for grant in (default, *self.s3_allowed))

    def endpoint_refused(self, endpoint: str | None) -> str | None:
        """Why no one may use `endpoint` (a plain-HTTP one, unless allowed); None if fine."""
        if endpoint and endpoint.lower().startswith("http://") and not self.s3_allow_http:
            return (
                f"the S3 endpoint {endpoint} is plain HTTP (credentials and data unencrypted); "
                "the operator allows only https:// endpoints (storage.allowHttp)"
            )
        return None

    # Container resources of trainer and server pods whose object sets no `resources`
    # (the chart's defaults), so pods are not BestEffort unless the platform wants them so.
    trainer_resources: dict[str, Any] = dataclasses.field(default_factory=dict)
    server_resources: dict[str, Any] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "OperatorConfig":
        env = os.environ if env is None else env
        defaults = cls()
        namespaces = tuple(n for n in env.get("CTRAIN_WATCH_NAMESPACES", "").split(",") if n)
        return cls(
            image=env.get("CTRAIN_IMAGE", defaults.image),
            image_pull_policy=env.get("CTRAIN_IMAGE_PULL_POLICY", defaults.image_pull_policy),
            s3_endpoint=env.get("CTRAIN_S3_ENDPOINT") or None,
            s3_region=env.get("CTRAIN_S3_REGION", defaults.s3_region),
            s3_addressing_style=env.get("CTRAIN_S3_ADDRESSING_STYLE", defaults.s3_addressing_style),
            default_bucket=env.get("CTRAIN_DEFAULT_BUCKET", defaults.default_bucket),
            default_prefix=env.get("CTRAIN_DEFAULT_PREFIX", defaults.default_prefix),
            default_secret=env.get("CTRAIN_S3_SECRET", defaults.default_secret or "") or None,
            watch_namespaces=namespaces,
            registry_poll_seconds=float(
                env.get("CTRAIN_REGISTRY_POLL_SECONDS", defaults.registry_poll_seconds)
            ),
            s3_allowed=_grants(env.get("CTRAIN_S3_ALLOWED") or "[]"),
            s3_allow_http=env.get("CTRAIN_S3_ALLOW_HTTP", "").lower() in ("1", "true", "yes"),
            s3_sse=_sse(env.get("CTRAIN_S3_SSE") or "None", env.get("CTRAIN_S3_SSE_KMS_KEY_ID")),
            s3_sse_kms_key_id=env.get("CTRAIN_S3_SSE_KMS_KEY_ID") or None,
            trainer_resources=_resources(env, "CTRAIN_TRAINER_RESOURCES"),
            server_resources=_resources(env, "CTRAIN_SERVER_RESOURCES"),
        )


def _resources(env: Mapping[str, str], name: str) -> dict[str, Any]:
    """A core/v1 ResourceRequirements as JSON; a value that is not one stops the operator
    at start (a typo in the chart must not silently give every pod no resources)."""
    text = env.get(name, "").strip()
    if not text:
        return {}
    value = json.loads(text)
    if not isinstance(value, dict) or not set(value) <= {"requests", "limits", "claims"}:
        raise ValueError(f"{name} must be a JSON object with requests and/or limits: {text!r}")
    return value
