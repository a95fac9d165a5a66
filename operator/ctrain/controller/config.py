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

__all__ = ["OperatorConfig"]


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
