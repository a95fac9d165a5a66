"""Status models of the ctrain.dev/v1alpha1 kinds: what the operator learns and reports.

The operator writes only `status` (never a user's spec, which GitOps tools own). Every
status has `observedGeneration`, standard conditions and a `phase` for `kubectl get`.
All fields are optional: a status grows as reconciliation proceeds.
"""

from enum import StrEnum
from typing import Any

from pydantic import Field

from ctrain.api.common import Condition, Int32, Int64, StatusModel, Time

__all__ = [
    "CanaryAnalysis",
    "CanaryVerdict",
    "Comparison",
    "ComparisonVerdict",
    "ContinuousTrainingPhase",
    "ContinuousTrainingStatus",
    "DriftStatus",
    "GateResult",
    "LastTriggered",
    "ModelDeploymentPhase",
    "ModelDeploymentStatus",
    "TrainingJobPhase",
    "TrainingJobStatus",
    "TriggerReason",
    "VersionMetrics",
]


class TrainingJobPhase(StrEnum):
    """Lifecycle of a TrainingJob, like a batch Job's."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class ModelDeploymentPhase(StrEnum):
    """Summary of a ModelDeployment's rollout and health."""

    PENDING = "Pending"
    PROGRESSING = "Progressing"
    AVAILABLE = "Available"
    DEGRADED = "Degraded"


class ContinuousTrainingPhase(StrEnum):
    """What the training loop is doing now."""

    IDLE = "Idle"
    RUNNING = "Running"
    SUSPENDED = "Suspended"


class TriggerReason(StrEnum):
    """Why a ContinuousTraining started a run."""

    MANUAL = "Manual"
    SCHEDULE = "Schedule"
    NEW_DATA = "NewData"
    DRIFT = "Drift"


class ComparisonVerdict(StrEnum):
    """How the challenger compared with the champion (docs/api.md, "How a model is judged")."""

    BETTER = "Better"
    NOT_BETTER = "NotBetter"
    NO_CHAMPION = "NoChampion"
    NOT_COMPARABLE = "NotComparable"


def _unset(value: object) -> bool:
    return value is None


def _empty(value: object) -> bool:
    return not value


def _conditions_field() -> Any:
    return Field(
        default_factory=list,
        description="Standard conditions (Ready and kind-specific ones).",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


def _observed_generation_field() -> Any:
    return Field(default=None, ge=0, description="The .metadata.generation this status describes.")


class VersionMetrics(StatusModel):
    """A model version and its evaluation metrics."""

    version: str | None = Field(default=None, description="Model version in the registry.")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Metric name to value on the test split."
    )


class GateResult(StatusModel):
    """The outcome of one evaluation gate."""

    metric: str = Field(description="Name of the metric the gate checked.")
    # A gate without a bound omits it, in status and in the trainer's documents alike.
    min: float | None = Field(
        default=None, exclude_if=_unset, description="Lower bound of the gate."
    )
    max: float | None = Field(
        default=None, exclude_if=_unset, description="Upper bound of the gate."
    )
    value: float | None = Field(default=None, description="The metric's value.")
    passed: bool = Field(description="Whether the value met the bounds.")


class Comparison(StatusModel):
    """Challenger and champion scored on the same holdout rows, none of which either trained on.

    Optional fields are omitted when unset (e.g. no champion, or it could not be scored).
    """

    champion_version: str | None = Field(
        default=None, exclude_if=_unset, description="The champion compared with."
    )
    holdout_rows: Int64 | None = Field(
        default=None,
        ge=0,
        exclude_if=_unset,
        description="Holdout rows both models were scored on.",
    )
    champion_seen_rows: Int64 | None = Field(
        default=None,
        ge=0,
        exclude_if=_unset,
        description="Of those, rows the champion's own recorded split put in its training "
        "data; computed, and always 0 in a comparison that was made.",
    )
    excluded_rows: Int64 | None = Field(
        default=None,
        ge=0,
        exclude_if=_unset,
        description="Holdout rows left out because the champion may have trained on them.",
    )
    challenger: dict[str, float] = Field(
        default_factory=dict,
        exclude_if=_empty,
        description="The challenger's key metric on the compared rows.",
    )
    champion: dict[str, float] = Field(
        default_factory=dict,
        exclude_if=_empty,
        description="The champion's key metric on the compared rows.",
    )
    delta: float | None = Field(
        default=None,
        exclude_if=_unset,
        description="The challenger's improvement on the key metric in its better direction "
        "(positive: the challenger is better).",
    )
    confidence_interval: list[float] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        exclude_if=_unset,
        description="95% confidence interval [lo, hi] of delta, from a seeded paired "
        "bootstrap over the compared rows.",
    )
    p_value: float | None = Field(
        default=None,
        exclude_if=_unset,
        description="Two-sided p-value of the paired test named in `test`.",
    )
    test: str | None = Field(
        default=None,
        exclude_if=_unset,
        description="The test behind pValue: McNemar, PairedBootstrap or PairedTTest.",
    )
    significant: bool | None = Field(
        default=None,
        exclude_if=_unset,
        description="Whether pValue is below evaluation.significance.alpha (set only when "
        "significance is required).",
    )
    verdict: ComparisonVerdict = Field(
        description="Better, NotBetter, NoChampion or NotComparable."
    )
    reason: str | None = Field(default=None, exclude_if=_unset, description="Why, in one sentence.")


class TrainingJobStatus(StatusModel):
    """Observed state of a TrainingJob."""

    phase: TrainingJobPhase | None = Field(default=None, description="Lifecycle phase.")
    observed_generation: Int64 | None = _observed_generation_field()
    conditions: list[Condition] = _conditions_field()
    message: str | None = Field(default=None, description="Human-readable summary.")
    job_name: str | None = Field(default=None, description="Name of the training Job.")
    start_time: Time | None = Field(default=None, description="When the Job started.")
    completion_time: Time | None = Field(default=None, description="When the run finished.")
    model_version: str | None = Field(default=None, description="Version the run registered.")
    artifact_uri: str | None = Field(default=None, description="s3:// URI of the artifacts.")
    task: str | None = Field(default=None, description="classification or regression.")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Metric name to value on the test split."
    )
    key_metric: str | None = Field(
        default=None, description="The key metric and its value, e.g. accuracy=0.9700."
    )
    baseline: VersionMetrics | None = Field(
        default=None, description="The champion the model was compared with, if any."
    )
    comparison: Comparison | None = Field(
        default=None,
        description="The challenger against the champion on the same unseen holdout rows.",
    )
    gates: list[GateResult] = Field(default_factory=list, description="Outcome of each gate.")
    decision: str | None = Field(
        default=None, description="Why the model was or was not blessed and promoted."
    )
    blessed: bool | None = Field(
        default=None, description="Whether the model passed every gate and beat the baseline."
    )
    promoted: bool | None = Field(
        default=None, description="Whether the champion alias now points at modelVersion."
    )
    data_fingerprint: str | None = Field(
        default=None, description="sha256 of the training data, e.g. sha256:ab12..."
    )
    rows: Int64 | None = Field(default=None, ge=0, description="Rows in the dataset.")


class DriftStatus(StatusModel):
    """The latest drift check of served inputs against the training data."""

    score: float | None = Field(
        default=None, description="Overall drift score: the mean PSI over the monitored features."
    )
    detected: bool | None = Field(default=None, description="Whether score exceeds threshold.")
    samples: Int64 | None = Field(default=None, ge=0, description="Served rows compared.")
    features: dict[str, float] = Field(default_factory=dict, description="Drift score per feature.")
    checked_at: Time | None = Field(default=None, description="When drift was last checked.")


class CanaryVerdict(StrEnum):
    """Where the canary analysis stands (docs/api.md, "How a canary is judged")."""

    WAITING_FOR_TRAFFIC = "WaitingForTraffic"
    INCONCLUSIVE = "Inconclusive"
    HEALTHY = "Healthy"
    FAILED = "Failed"


class CanaryAnalysis(StatusModel):
    """The latest analysis of the canary against the stable track over the same window."""

    version: str | None = Field(default=None, description="The canary's version.")
    requests: Int64 | None = Field(
        default=None, ge=0, description="Inference requests the canary served since it started."
    )
    errors: Int64 | None = Field(
        default=None, ge=0, description="Of those, server errors (5xx); 4xx do not count."
    )
    stable_requests: Int64 | None = Field(
        default=None, ge=0, description="Inference requests the stable track served meanwhile."
    )
    stable_errors: Int64 | None = Field(
        default=None, ge=0, description="Of those, server errors (5xx)."
    )
    latency_p99_ms: float | None = Field(
        default=None, description="The canary's 99th percentile latency (a bucket's bound)."
    )
    restarts: Int32 | None = Field(
        default=None, ge=0, description="Container restarts of the canary's pods."
    )
    unscraped_pods: Int32 | None = Field(
        default=None, ge=0, description="Ready pods whose metrics could not be read."
    )
    verdict: CanaryVerdict | None = Field(
        default=None, description="WaitingForTraffic, Inconclusive, Healthy or Failed."
    )
    message: str | None = Field(default=None, description="The verdict in words.")


class ModelDeploymentStatus(StatusModel):
    """Observed state of a ModelDeployment."""

    phase: ModelDeploymentPhase | None = Field(default=None, description="Rollout phase.")
    observed_generation: Int64 | None = _observed_generation_field()
    conditions: list[Condition] = _conditions_field()
    message: str | None = Field(default=None, description="Human-readable summary.")
    current_version: str | None = Field(default=None, description="Version serving traffic.")
    canary_version: str | None = Field(default=None, description="Version under canary test.")
    previous_version: str | None = Field(
        default=None, description="Version served before currentVersion (rollback target)."
    )
    rolled_back_version: str | None = Field(
        default=None,
        description="A version whose rollout failed; not retried until the requested "
        "version changes.",
    )
    rollout_start_time: Time | None = Field(
        default=None, description="When the rollout in progress began."
    )
    canary_start_time: Time | None = Field(
        default=None, description="When the canary in progress became ready."
    )
    canary_analysis: CanaryAnalysis | None = Field(
        default=None, description="The latest analysis of the canary in progress."
    )
    rejected_version: str | None = Field(
        default=None,
        description="A version this ModelDeployment marked rejected in the registry after "
        "a failure attributable to the model (and demoted when it was champion).",
    )
    replicas: Int32 | None = Field(default=None, ge=0, description="Serving pods desired.")
    ready_replicas: Int32 | None = Field(default=None, ge=0, description="Serving pods ready.")
    selector: str | None = Field(
        default=None, description="Label selector of the serving pods (scale subresource)."
    )
    endpoint: str | None = Field(default=None, description="In-cluster URL of the Service.")
    drift: DriftStatus | None = Field(default=None, description="The latest drift check.")


class LastTriggered(StatusModel):
    """When and why the latest run started."""

    time: Time | None = Field(default=None, description="When the run was triggered.")
    reason: TriggerReason | None = Field(
        default=None, description="Manual, Schedule, NewData or Drift."
    )
    detail: str | None = Field(default=None, description="Details, e.g. the new data ETag.")
    skipped: str | None = Field(
        default=None,
        description="Why the trigger started no run (NoNewData: its data was trained on "
        "already); unset when it started one.",
    )


class ContinuousTrainingStatus(StatusModel):
    """Observed state of a ContinuousTraining."""

    phase: ContinuousTrainingPhase | None = Field(default=None, description="Loop phase.")
    observed_generation: Int64 | None = _observed_generation_field()
    conditions: list[Condition] = _conditions_field()
    message: str | None = Field(default=None, description="Human-readable summary.")
    last_triggered: LastTriggered | None = Field(
        default=None, description="When and why the latest run started."
    )
    active_run: str | None = Field(default=None, description="Name of the running TrainingJob.")
    last_run: str | None = Field(default=None, description="Name of the latest finished run.")
    last_run_phase: TrainingJobPhase | None = Field(
        default=None, description="Phase of the latest finished run: Succeeded or Failed."
    )
    last_decision: str | None = Field(
        default=None,
        description="What the latest finished run decided: promoted, or the champion kept "
        "because the new model was not better, with both metrics.",
    )
    champion: VersionMetrics | None = Field(
        default=None, description="The model's champion version and its metrics."
    )
    observed_trigger: str | None = Field(
        default=None, description="Last value of the ctrain.dev/trigger annotation acted on."
    )
    data_version: str | None = Field(
        default=None, description="ETag or version of the dataset object last trained on."
    )
    pending_run: LastTriggered | None = Field(
        default=None,
        description="A trigger that fired while a run was active under concurrencyPolicy "
        "Forbid (new data, a manual run): it starts a run as soon as the active one ends.",
    )
    drift_episode: str | None = Field(
        default=None,
        description="The served version whose drift episode already started a run; "
        "cleared when drift is no longer detected. One episode starts one run.",
    )
    last_schedule_time: Time | None = Field(
        default=None, description="The latest scheduled time a run was started for."
    )
    last_drift_trigger_time: Time | None = Field(
        default=None, description="When drift last started a run (for the cooldown)."
    )
