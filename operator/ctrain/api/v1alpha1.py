"""The ctrain.dev/v1alpha1 API: TrainingJob, ModelDeployment and ContinuousTraining.

This module is the API version's single import point. The models are the source of truth
for the API: the CRDs in `crds/` are generated from them (`ctrain generate`), the operator
parses every object it handles with them, and the trainer validates its `--spec-json`
with `TrainingJobSpec`. Field names follow the API contract in DESIGN.md; every field's
description becomes `kubectl explain` text. The pieces live in sibling modules by kind.
"""

from typing import Any, ClassVar

from pydantic import ConfigDict, Field, field_validator, model_validator

from ctrain.api.catalog import (
    DEFAULT_METRICS,
    ESTIMATORS,
    HIGHER_IS_BETTER,
    METRIC_TASKS,
    METRICS,
    Metric,
    Task,
    higher_is_better,
)
from ctrain.api.common import (
    API_VERSION,
    GROUP,
    VERSION,
    ApiModel,
    Condition,
    ConditionStatus,
    ConditionType,
    PodControls,
    Reason,
    StorageSpec,
    TemplateMetadata,
    Toleration,
)
from ctrain.api.continuoustraining import (
    ContinuousTrainingSpec,
    OnDriftTrigger,
    OnNewDataTrigger,
    OnPerformanceTrigger,
    TrainingJobTemplate,
    TriggersSpec,
)
from ctrain.api.modeldeployment import (
    CanarySpec,
    DriftMonitoringSpec,
    ModelDeploymentSpec,
    MonitoringSpec,
    PerformanceMonitoringSpec,
    PredictionLogSpec,
    StrategySpec,
)
from ctrain.api.status import (
    Comparison,
    ComparisonVerdict,
    ContinuousTrainingPhase,
    ContinuousTrainingStatus,
    DriftStatus,
    GateResult,
    LastTriggered,
    ModelDeploymentPhase,
    ModelDeploymentStatus,
    PerformanceStatus,
    TrainingJobPhase,
    TrainingJobStatus,
    TriggerReason,
    VersionMetrics,
)
from ctrain.api.trainingjob import (
    ColumnExpectation,
    DatasetSpec,
    EstimatorSpec,
    EvaluationSpec,
    Expectations,
    FeedbackSpec,
    Gate,
    SignificanceSpec,
    TrainingJobSpec,
)

__all__ = [
    "API_VERSION",
    "DEFAULT_METRICS",
    "ESTIMATORS",
    "GROUP",
    "HIGHER_IS_BETTER",
    "KINDS",
    "METRICS",
    "METRIC_TASKS",
    "VERSION",
    "ApiModel",
    "CanarySpec",
    "ColumnExpectation",
    "Comparison",
    "ComparisonVerdict",
    "Condition",
    "ConditionStatus",
    "ConditionType",
    "ContinuousTraining",
    "ContinuousTrainingPhase",
    "ContinuousTrainingSpec",
    "ContinuousTrainingStatus",
    "DatasetSpec",
    "DriftMonitoringSpec",
    "DriftStatus",
    "EstimatorSpec",
    "EvaluationSpec",
    "Expectations",
    "FeedbackSpec",
    "Gate",
    "GateResult",
    "LastTriggered",
    "Metric",
    "ModelDeployment",
    "ModelDeploymentPhase",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "MonitoringSpec",
    "OnDriftTrigger",
    "OnNewDataTrigger",
    "OnPerformanceTrigger",
    "PerformanceMonitoringSpec",
    "PerformanceStatus",
    "PodControls",
    "PredictionLogSpec",
    "Reason",
    "Resource",
    "SignificanceSpec",
    "StorageSpec",
    "StrategySpec",
    "Task",
    "TemplateMetadata",
    "Toleration",
    "TrainingJob",
    "TrainingJobPhase",
    "TrainingJobSpec",
    "TrainingJobStatus",
    "TrainingJobTemplate",
    "TriggerReason",
    "TriggersSpec",
    "VersionMetrics",
    "higher_is_better",
]


class Resource(ApiModel):
    """A whole object as the apiserver (or a kopf body) holds it."""

    model_config = ConfigDict(extra="ignore")

    # Names the CRD and the operator's kopf handlers use.
    KIND: ClassVar[str]
    SINGULAR: ClassVar[str]
    PLURAL: ClassVar[str]
    SHORT_NAMES: ClassVar[tuple[str, ...]]

    api_version: str = Field(default=API_VERSION, description="APIVersion of the object.")
    kind: str = Field(description="Kind of the object.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Standard object metadata.")

    @field_validator("api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        if value != API_VERSION:
            raise ValueError(f"apiVersion must be {API_VERSION}")
        return value

    @model_validator(mode="after")
    def _kind(self) -> "Resource":
        if self.kind != self.KIND:
            raise ValueError(f"kind must be {self.KIND}")
        return self

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))


class TrainingJob(Resource):
    """One training run of a model, like a batch Job."""

    KIND = "TrainingJob"
    SINGULAR = "trainingjob"
    PLURAL = "trainingjobs"
    SHORT_NAMES = ("tj",)

    kind: str = Field(default=KIND, description="Kind of the object.")
    spec: TrainingJobSpec = Field(description="What to train, on what data, to what bar.")
    status: TrainingJobStatus | None = Field(default=None, description="Observed state.")


class ModelDeployment(Resource):
    """Serving of one model over HTTP, with safe rollouts and drift monitoring."""

    KIND = "ModelDeployment"
    SINGULAR = "modeldeployment"
    PLURAL = "modeldeployments"
    SHORT_NAMES = ("md",)

    kind: str = Field(default=KIND, description="Kind of the object.")
    spec: ModelDeploymentSpec = Field(description="Which model to serve and how.")
    status: ModelDeploymentStatus | None = Field(default=None, description="Observed state.")


class ContinuousTraining(Resource):
    """The continuous-training loop: TrainingJobs on a schedule, on new data, on drift or on
    degraded live performance."""

    KIND = "ContinuousTraining"
    SINGULAR = "continuoustraining"
    PLURAL = "continuoustrainings"
    SHORT_NAMES = ("ct",)

    kind: str = Field(default=KIND, description="Kind of the object.")
    spec: ContinuousTrainingSpec = Field(description="The run template and its triggers.")
    status: ContinuousTrainingStatus | None = Field(default=None, description="Observed state.")


KINDS: tuple[type[Resource], ...] = (TrainingJob, ModelDeployment, ContinuousTraining)
