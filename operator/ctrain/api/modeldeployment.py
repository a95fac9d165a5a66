"""The ModelDeployment spec: which model version to serve, how to roll it out, what to watch."""

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from ctrain.api.catalog import Metric
from ctrain.api.common import (
    ApiModel,
    Int32,
    PodControls,
    ResourceRequirements,
    StorageSpec,
    model_name_field,
    pod_field,
    resources_field,
)

__all__ = [
    "CanarySpec",
    "DriftMonitoringSpec",
    "ModelDeploymentSpec",
    "MonitoringSpec",
    "PerformanceMonitoringSpec",
    "PredictionLogSpec",
    "StrategySpec",
]

# The longest window a live-performance check or a feedback run reads (one S3 listing per
# day of the window): 90 days.
MAX_WINDOW_SECONDS = 90 * 86400


class CanarySpec(ApiModel):
    """How a new version is tried on part of the traffic before it takes all of it."""

    weight: Int32 = Field(
        default=20, ge=1, le=99, description="Percent of requests sent to the canary."
    )
    promote_after_seconds: Int32 = Field(
        default=300, ge=0, description="Seconds the canary must stay healthy to be promoted."
    )
    max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Largest fraction of the canary's inference requests that may fail on "
        "the server's side (5xx; client errors, 4xx, do not count); above it, it rolls back.",
    )
    min_requests: Int32 = Field(
        default=100,
        ge=1,
        description="Inference requests the canary must have served before it can be "
        "promoted; until then it waits (reason CanaryWaitingForTraffic).",
    )
    max_latency_p99_ms: float | None = Field(
        default=None,
        gt=0,
        description="Optional ceiling of the canary's 99th percentile inference latency in "
        "milliseconds, from the server's histogram; above it, it rolls back.",
    )


class StrategySpec(ApiModel):
    """How a new model version replaces the serving one."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.canary) || (has(self.type) && self.type == 'Canary')",
                    "message": "strategy.canary is only used with type: Canary",
                }
            ]
        }
    )

    type: Literal["RollingUpdate", "Canary"] = Field(
        default="RollingUpdate",
        description="RollingUpdate replaces pods gradually; Canary first sends a share of "
        "traffic to the new version.",
    )
    canary: CanarySpec | None = Field(
        default=None, description="Canary settings (type: Canary only)."
    )

    @model_validator(mode="after")
    def _canary_only_with_canary(self) -> "StrategySpec":
        if self.canary is not None and self.type != "Canary":
            raise ValueError("strategy.canary is only used with type: Canary")
        return self

    @property
    def canary_settings(self) -> CanarySpec:
        """The canary settings in effect (defaults when the block is omitted)."""
        return self.canary or CanarySpec()


class DriftMonitoringSpec(ApiModel):
    """Comparison of served inputs with the training data's distribution."""

    enabled: bool = Field(default=False, description="Whether drift is measured.")
    threshold: float = Field(
        default=0.2, ge=0, description="Drift score above which drift is reported."
    )
    min_samples: Int32 = Field(
        default=500, ge=1, description="Served rows needed before drift is judged."
    )
    interval_seconds: Int32 = Field(default=60, ge=10, description="Seconds between drift checks.")


class PredictionLogSpec(ApiModel):
    """Sampled requests and their predictions written to the registry storage (Parquet),
    for the join with labels that arrive later (docs/api.md, "Prediction logs")."""

    enabled: bool = Field(default=False, description="Whether serving pods log predictions.")
    sample_rate: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="Share of requests logged, 0 to 1 (all rows of a request, or none).",
    )
    flush_seconds: Int32 = Field(
        default=30,
        ge=5,
        le=3600,
        description="Seconds between writes of the buffered rows (at least 5); a pod "
        "also writes what it holds when it stops.",
    )
    exclude_columns: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list,
        max_length=1000,
        description="Features never written to the log (e.g. personal data). A model "
        "retrained on feedback needs its features logged.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class PerformanceMonitoringSpec(ApiModel):
    """Live performance: the served model's metric on logged predictions joined with the
    labels uploaded under <prefix>/<model>/labels/, checked by a pod the operator runs."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.enabled || has(self.threshold)",
                    "message": "performance.threshold is required when performance is enabled",
                }
            ]
        }
    )

    enabled: bool = Field(default=False, description="Whether live performance is checked.")
    metric: Metric | None = Field(
        default=None,
        description="Metric to compute, one the trainer knows and that fits the model's "
        "task. Default: accuracy (classification) or r2 (regression).",
    )
    threshold: float | None = Field(
        default=None,
        description="Worst acceptable value of the metric: below it (above it for errors "
        "and losses such as rmse) performance is degraded. Required when enabled.",
    )
    min_samples: Int32 = Field(
        default=100,
        ge=1,
        description="Labelled predictions needed before performance is judged; with fewer "
        "the PerformanceDegraded condition is Unknown (NotEnoughLabels).",
    )
    window_seconds: Int32 = Field(
        default=86400,
        ge=60,
        le=MAX_WINDOW_SECONDS,
        description="Seconds of logged predictions (by request time) each check reads.",
    )
    interval_seconds: Int32 = Field(
        default=300,
        ge=30,
        description="Seconds between checks (at least 30).",
    )

    @model_validator(mode="after")
    def _threshold_when_enabled(self) -> "PerformanceMonitoringSpec":
        if self.enabled and self.threshold is None:
            raise ValueError("performance.threshold is required when performance is enabled")
        return self


class MonitoringSpec(ApiModel):
    """What the operator watches on the serving pods."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.performance) || !self.performance.enabled || "
                    "(has(self.predictionLog) && self.predictionLog.enabled)",
                    "message": "performance needs predictionLog.enabled: true",
                }
            ]
        }
    )

    drift: DriftMonitoringSpec = Field(
        default_factory=DriftMonitoringSpec, description="Input drift detection."
    )
    prediction_log: PredictionLogSpec | None = Field(
        default=None, description="Logging of sampled predictions to the registry storage."
    )
    performance: PerformanceMonitoringSpec | None = Field(
        default=None, description="Live performance from labels (needs predictionLog)."
    )

    @model_validator(mode="after")
    def _performance_needs_the_log(self) -> "MonitoringSpec":
        if self.performance_enabled and not self.prediction_log_enabled:
            raise ValueError("performance needs predictionLog.enabled: true")
        return self

    @property
    def prediction_log_enabled(self) -> bool:
        return self.prediction_log is not None and self.prediction_log.enabled

    @property
    def performance_enabled(self) -> bool:
        return self.performance is not None and self.performance.enabled


class ModelDeploymentSpec(ApiModel):
    """Serve one model version over HTTP (Open Inference Protocol v2)."""

    model: str = model_name_field()
    version: str = Field(
        default="champion",
        max_length=20,
        pattern=r"^(champion|latest|[1-9][0-9]{0,9})$",
        description="Version to serve: champion, latest or a version number (quoted).",
    )
    replicas: Int32 = Field(default=1, ge=0, le=100, description="Number of serving pods.")
    strategy: StrategySpec = Field(
        default_factory=StrategySpec, description="How new versions roll out."
    )
    progress_deadline_seconds: Int32 = Field(
        default=300,
        ge=1,
        description="Seconds a rollout may take to become ready before it is rolled back.",
    )
    monitoring: MonitoringSpec = Field(
        default_factory=MonitoringSpec, description="Monitoring of the served model."
    )
    storage: StorageSpec | None = Field(
        default=None, description="Model registry location; the operator's default when unset."
    )
    resources: ResourceRequirements = resources_field()
    pod: PodControls | None = pod_field()
