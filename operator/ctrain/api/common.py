"""Building blocks shared by every ctrain kind: the wire conventions and the status vocabulary.

The kinds in `ctrain.api.v1alpha1` are assembled from these pieces. They live apart so
that a future API version can reuse them, and so that the operator, the trainer and the
tests share one set of condition types, reasons and phases instead of string literals.
"""

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "API_VERSION",
    "DEFAULT_BUCKET",
    "DEFAULT_PREFIX",
    "DNS1123_LABEL",
    "DNS1123_SUBDOMAIN",
    "GROUP",
    "VERSION",
    "ApiModel",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "EncryptionSpec",
    "Int32",
    "Int64",
    "PodControls",
    "Quantity",
    "Reason",
    "ResourceClaim",
    "ResourceRequirements",
    "StatusModel",
    "StorageSpec",
    "TemplateMetadata",
    "Time",
    "Toleration",
    "format_time",
    "model_name_field",
    "pod_field",
    "resources_field",
    "shown",
    "shown_names",
    "storage_location",
    "validation_message",
]

GROUP = "ctrain.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# A DNS-1123 label: the shape of model names, which become parts of object names.
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# A DNS-1123 subdomain: the shape of object names (Secrets, ModelDeployments).
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

# Integer widths as the apiserver documents them (`format` in the CRD schema).
Int32 = Annotated[int, Field(json_schema_extra={"format": "int32"})]
Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """RFC 3339 in UTC with whole seconds (`2026-11-22T10:00:00Z`), as metav1.Time and
    `kubectl` write it: the one format of every time ctrain writes (status, Events,
    registry objects, the server's reports). A naive datetime is taken to be UTC."""
    return _as_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


Time = Annotated[
    datetime,
    AfterValidator(_as_utc),
    PlainSerializer(format_time, return_type=str, when_used="json"),
]
"""A point in time, in UTC; serialized like metav1.Time (`2026-11-22T10:00:00Z`)."""


def _plain(value: Any) -> Any:
    """Copy kopf's read-only Mapping views (Body, Spec, Status) into plain dicts and lists."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


class ApiModel(BaseModel):
    """Base of every spec model: camelCase on the wire, snake_case in Python, no unknown fields.

    Unknown fields are rejected so that a typo in a sample or in `--spec-json` fails loudly;
    the apiserver prunes unknown fields before the operator ever sees an object.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
    )

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """Validate a dict (or a kopf Body/Spec/Status view) into this model."""
        return cls.model_validate(_plain(data))

    def to_wire(self, *, exclude_none: bool = True) -> dict[str, Any]:
        """The camelCase JSON-ready dict for the apiserver (a status patch, a child's spec)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)


# Names taken from a user's spec or data (parameters, columns, fields) are echoed back in
# messages that land in status and Events, which people without access to the data or the
# spec's author may read: a message shows a few of them, each cut short, never all.
SHOWN_NAMES = 8
SHOWN_WIDTH = 64


def shown(name: object, width: int = SHOWN_WIDTH) -> str:
    """`name` as text of at most `width` characters (longer ones end in "…")."""
    text = str(name)
    return text if len(text) <= width else text[: width - 1] + "…"


def shown_names(names: Iterable[object], count: int = SHOWN_NAMES, width: int = SHOWN_WIDTH) -> str:
    """At most `count` of `names`, comma-separated and each `shown`, then how many more."""
    listed = list(names)
    text = ", ".join(shown(name, width) for name in listed[:count])
    if len(listed) > count:
        text += f" and {len(listed) - count} more"
    return text


def validation_message(error: ValidationError) -> str:
    """`spec.dataset.uri: String should match pattern ...` for each problem, field first:
    how an object whose spec the operator cannot parse is reported in status and Events.
    At most `SHOWN_NAMES` problems, each field path cut short (a path holds user keys)."""
    problems = error.errors()
    parts = []
    for problem in problems[:SHOWN_NAMES]:
        location = shown(".".join(str(part) for part in ("spec", *problem["loc"])), 256)
        parts.append(f"{location}: {shown(problem['msg'], 512)}")
    if len(problems) > SHOWN_NAMES:
        parts.append(f"and {len(problems) - SHOWN_NAMES} more problems")
    return "; ".join(parts)


class StatusModel(ApiModel):
    """Base of status models: tolerant of fields it does not know (written by a newer operator)."""

    model_config = ConfigDict(extra="ignore")


class ConditionStatus(StrEnum):
    """The status of a condition, as in metav1.Condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """Condition types the operator sets. `Ready` is the summary that `kubectl wait` uses."""

    READY = "Ready"
    # Every kind, read by kstatus (Flux, cli-utils): abnormal-true, never both True
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    # TrainingJob
    COMPLETE = "Complete"  # terminal, as on a batch Job: kubectl wait --for=condition=Complete
    FAILED = "Failed"  # terminal, as on a batch Job: kubectl wait --for=condition=Failed
    DATA_VALIDATED = "DataValidated"
    TRAINED = "Trained"
    BLESSED = "Blessed"
    # ModelDeployment (abnormal-true, as a Deployment has them)
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    DRIFT_DETECTED = "DriftDetected"
    PERFORMANCE_DEGRADED = "PerformanceDegraded"
    # ContinuousTraining
    RUNNING = "Running"


class Reason(StrEnum):
    """CamelCase reasons for conditions and Events; the trainer's failure reasons included."""

    # Generic
    RECONCILING = "Reconciling"
    RECONCILED = "Reconciled"
    INVALID_SPEC = "InvalidSpec"
    STORAGE_ERROR = "StorageError"
    STORAGE_FORBIDDEN = "StorageForbidden"
    # TrainingJob lifecycle
    JOB_CREATED = "JobCreated"
    JOB_RUNNING = "JobRunning"
    JOB_SUCCEEDED = "JobSucceeded"
    JOB_FAILED = "JobFailed"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    NO_TERMINATION_MESSAGE = "NoTerminationMessage"
    RECOVERED_FROM_REGISTRY = "RecoveredFromRegistry"
    # Trainer failure reasons (docs/contracts.md)
    DATASET_NOT_FOUND = "DatasetNotFound"
    DATASET_UNREADABLE = "DatasetUnreadable"
    DATA_VALIDATION_FAILED = "DataValidationFailed"
    UNKNOWN_ESTIMATOR = "UnknownEstimator"
    INVALID_PARAMS = "InvalidParams"
    TRAINING_FAILED = "TrainingFailed"
    # TrainingJob outcomes
    DATA_VALID = "DataValid"
    TRAINING_SUCCEEDED = "TrainingSucceeded"
    GATES_PASSED = "GatesPassed"
    GATES_FAILED = "GatesFailed"
    BASELINE_NOT_BEATEN = "BaselineNotBeaten"
    NOT_SIGNIFICANT = "NotSignificant"
    CHAMPION_NOT_COMPARABLE = "ChampionNotComparable"
    NO_BASELINE = "NoBaseline"
    PROMOTED = "Promoted"
    NOT_PROMOTED = "NotPromoted"
    CHAMPION_MOVED = "ChampionMoved"
    # ModelDeployment
    VERSION_NOT_FOUND = "VersionNotFound"
    ROLLING_OUT = "RollingOut"
    ROLLOUT_COMPLETE = "RolloutComplete"
    CANARY_IN_PROGRESS = "CanaryInProgress"
    CANARY_PROMOTED = "CanaryPromoted"
    CANARY_FAILED = "CanaryFailed"
    CANARY_WAITING_FOR_TRAFFIC = "CanaryWaitingForTraffic"
    CANARY_INCONCLUSIVE = "CanaryInconclusive"
    MODEL_REJECTED = "ModelRejected"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    ROLLED_BACK = "RolledBack"
    REPLICAS_UNAVAILABLE = "ReplicasUnavailable"
    DRIFT_DETECTED = "DriftDetected"
    NO_DRIFT = "NoDrift"
    NOT_ENOUGH_SAMPLES = "NotEnoughSamples"
    WORSE_THAN_THRESHOLD = "WorseThanThreshold"
    WITHIN_THRESHOLD = "WithinThreshold"
    NOT_ENOUGH_LABELS = "NotEnoughLabels"
    PERFORMANCE_NOT_CHECKED = "PerformanceNotChecked"
    PERFORMANCE_CHECK_FAILED = "PerformanceCheckFailed"
    # ContinuousTraining
    SUSPENDED = "Suspended"
    IDLE = "Idle"
    RUN_ACTIVE = "RunActive"
    RUN_SUCCEEDED = "RunSucceeded"
    RUN_FAILED = "RunFailed"
    TRIGGERED = "Triggered"
    CONCURRENCY_FORBIDDEN = "ConcurrencyForbidden"
    RUN_QUEUED = "RunQueued"
    NO_NEW_DATA = "NoNewData"
    DEPLOYMENT_NOT_FOUND = "DeploymentNotFound"
    NO_CHAMPION = "NoChampion"


class Condition(StatusModel):
    """One observation of an aspect of the object's state (the metav1.Condition shape)."""

    type: str = Field(
        description="Type of condition in CamelCase, e.g. Ready.",
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        description="A programmatic identifier in CamelCase for the last transition.",
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field(
        default="",
        description="A human-readable message with details about the last transition.",
        max_length=32768,
    )
    last_transition_time: Time = Field(
        description="When the condition last changed from one status to another."
    )
    observed_generation: Int64 | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation the condition was set for.",
    )


class EncryptionSpec(ApiModel):
    """Server-side encryption of every object ctrain writes to the storage."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.kmsKeyId) || self.type == 'aws:kms'",
                    "message": "kmsKeyId needs type aws:kms",
                }
            ]
        }
    )

    type: Literal["None", "AES256", "aws:kms"] = Field(
        description="None (the bucket's default), AES256 (SSE-S3) or aws:kms (SSE-KMS)."
    )
    kms_key_id: str | None = Field(
        default=None,
        description="KMS key (id, ARN or alias/...) for aws:kms; unset: the bucket's key.",
        min_length=1,
        max_length=2048,
        pattern=r"^[^\s]+$",
    )

    @model_validator(mode="after")
    def _kms_key_needs_kms(self) -> Self:
        if self.kms_key_id and self.type != "aws:kms":
            raise ValueError("kmsKeyId needs type aws:kms")
        return self


class StorageSpec(ApiModel):
    """Where model artifacts live: an S3-compatible bucket; unset fields use operator defaults."""

    bucket: str = Field(
        description="S3 bucket of the model registry.",
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
    )
    prefix: str | None = Field(
        default=None,
        description="Key prefix of the registry inside the bucket, without leading or "
        "trailing slash (the operator's default when unset).",
        max_length=512,
        pattern=r"^[^/\s]([^\s]*[^/\s])?$",
    )
    secret_ref: str | None = Field(
        default=None,
        description="Name of a Secret in the object's namespace with the keys "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the operator's default when unset).",
        max_length=253,
        pattern=DNS1123_SUBDOMAIN,
    )
    endpoint: str | None = Field(
        default=None,
        description="URL of an S3-compatible endpoint (MinIO, Ceph); unset means AWS S3.",
        max_length=2048,
        pattern=r"^https?://[^\s]+$",
    )
    region: str | None = Field(
        default=None,
        description="Region of the bucket, e.g. us-east-1.",
        max_length=64,
    )
    addressing_style: Literal["path", "virtual"] | None = Field(
        default=None,
        description="S3 addressing style: path (MinIO, most S3-compatible stores) or virtual "
        "(AWS virtual-hosted style); the operator's default when unset.",
    )
    encryption: EncryptionSpec | None = Field(
        default=None,
        description="Server-side encryption of every object written (models, metadata, "
        "references, the champion log, prediction logs); the operator's default when unset.",
    )


# Where the registry is when neither the object nor the operator names it.
DEFAULT_BUCKET = "models"
DEFAULT_PREFIX = "ctrain"


def storage_location(
    storage: StorageSpec | None,
    *,
    default_bucket: str = DEFAULT_BUCKET,
    default_prefix: str = DEFAULT_PREFIX,
) -> tuple[str, str]:
    """(bucket, prefix) of the registry: an object's own `storage` over the defaults (the
    operator's configuration, or CTRAIN_BUCKET/CTRAIN_PREFIX in a pod)."""
    if storage is None:
        return default_bucket, default_prefix
    return storage.bucket, default_prefix if storage.prefix is None else storage.prefix


def model_name_field() -> Any:
    return Field(
        description="Registry name of the model (a DNS-1123 label): artifacts live under "
        "<prefix>/<model>/ in the bucket.",
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
    )


# resource.Quantity's canonical pattern (k8s.io/apimachinery), as in the built-in CRDs.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


def _quantity_text(value: Any) -> Any:
    # An integer is a quantity too (`cpu: 2`); a bool is not.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Quantity = Annotated[
    str,
    BeforeValidator(_quantity_text),
    Field(max_length=64, pattern=QUANTITY_PATTERN),
    WithJsonSchema(
        {"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN, "maxLength": 64}
    ),
]
"""A resource.Quantity: `2`, `500m`, `1Gi` (an integer or a string, as in a Pod)."""


class ResourceClaim(ApiModel):
    """One dynamic resource claim a container uses (core/v1 ResourceClaim)."""

    name: str = Field(
        description="Name of an entry in the pod's resourceClaims.",
        max_length=63,
        pattern=DNS1123_LABEL,
    )
    request: str | None = Field(
        default=None,
        description="The request of the claim to use.",
        max_length=63,
        pattern=DNS1123_LABEL,
    )


class ResourceRequirements(ApiModel):
    """Compute resources of a container: core/v1 ResourceRequirements, field for field, so
    the API rejects a typo (`limit:`, `cpu: two`) instead of the pod ignoring it."""

    limits: dict[str, Quantity] | None = Field(
        default=None,
        description="Maximum amount of compute resources allowed, e.g. {cpu: 2, memory: 1Gi}.",
        max_length=32,
    )
    requests: dict[str, Quantity] | None = Field(
        default=None,
        description="Minimum amount of compute resources required, e.g. {cpu: 500m}.",
        max_length=32,
    )
    claims: list[ResourceClaim] | None = Field(
        default=None,
        description="Dynamic resource claims (spec.resourceClaims of the pod) used by this "
        "container.",
        max_length=16,
    )


def resources_field() -> Any:
    """The `resources` field: a core/v1 ResourceRequirements passed through to a container."""
    return Field(
        default_factory=ResourceRequirements,
        description="Compute resources of the container, as in a Pod's "
        "resources (requests, limits, claims).",
    )


# Keys ctrain sets on its pods and selects them by: a user's extra labels and annotations
# may not override them (CEL in the CRD, and the builders apply ctrain's last).
_OWN_KEYS_RULE = (
    "self.all(k, !k.startsWith('ctrain.dev/') && "
    "!(k in ['app.kubernetes.io/name', 'app.kubernetes.io/managed-by']))"
)
_OWN_KEYS_MESSAGE = (
    "ctrain.dev/ keys, app.kubernetes.io/name and app.kubernetes.io/managed-by are ctrain's own"
)
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class Toleration(ApiModel):
    """A core/v1 Toleration: the pod may run on nodes with a matching taint."""

    key: str | None = Field(default=None, description="Taint key; empty with Exists: all.")
    operator: Literal["Exists", "Equal"] | None = Field(
        default=None, description="Exists or Equal (the default)."
    )
    value: str | None = Field(default=None, description="Taint value (Equal only).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        default=None, description="Taint effect to tolerate; empty: all effects."
    )
    toleration_seconds: Int64 | None = Field(
        default=None, description="NoExecute only: how long the pod stays bound once tainted."
    )


class LocalObjectReference(ApiModel):
    """A reference to an object in the same namespace, by name."""

    name: str = Field(description="Name of the object (a Secret).", min_length=1, max_length=253)


class PodControls(ApiModel):
    """Where and as what ctrain's pods run, with the Kubernetes Pod fields of the same
    names; unset fields leave the pod as ctrain builds it."""

    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the pod must run on (Pod nodeSelector)."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints the pod tolerates (Pod tolerations)."
    )
    affinity: dict[str, Any] | None = Field(
        default=None,
        description="Node and pod (anti-)affinity, as a Pod's affinity (core/v1 Affinity; "
        "the apiserver validates it when the pod is created).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    service_account_name: str | None = Field(
        default=None,
        description="ServiceAccount the pod runs as, e.g. for workload identity to S3. Its "
        "API token is still not mounted: ctrain's pods need no Kubernetes API access.",
        max_length=253,
        pattern=_DNS1123_SUBDOMAIN,
    )
    image_pull_secrets: list[LocalObjectReference] = Field(
        default_factory=list,
        description="Secrets to pull the image with, beside the ServiceAccount's.",
    )
    priority_class_name: str | None = Field(
        default=None,
        description="PriorityClass of the pod.",
        max_length=253,
        pattern=_DNS1123_SUBDOMAIN,
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Extra labels on the pod; ctrain's own keys cannot be set.",
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": _OWN_KEYS_RULE, "message": _OWN_KEYS_MESSAGE}]
        },
    )
    annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Extra annotations on the pod; ctrain's own keys cannot be set.",
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": _OWN_KEYS_RULE, "message": _OWN_KEYS_MESSAGE}]
        },
    )


def pod_field() -> Any:
    return Field(
        default=None,
        description="Scheduling, identity and metadata of the pods ctrain creates for this "
        "object: nodeSelector, tolerations, affinity, serviceAccountName, "
        "imagePullSecrets, priorityClassName, labels, annotations.",
    )


class TemplateMetadata(ApiModel):
    """Labels and annotations copied onto each object created from a template."""

    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels to set on each created object."
    )
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations to set on each created object."
    )
