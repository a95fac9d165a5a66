"""The TrainingJob spec: the data, its expectations, the estimator and how it is judged.

`ctrain train` validates its `--spec-json` with `TrainingJobSpec`, so the validation here
is what both the operator (before creating a Job) and the trainer rely on.
"""

from typing import Any, Literal

from pydantic import ConfigDict, Field, JsonValue, field_validator, model_validator

from ctrain.api.catalog import DEFAULT_METRICS, ESTIMATORS, METRIC_TASKS, Metric, Task
from ctrain.api.common import (
    ApiModel,
    Int32,
    Int64,
    PodControls,
    ResourceRequirements,
    StorageSpec,
    model_name_field,
    pod_field,
    resources_field,
)

__all__ = [
    "BUILTIN_TARGET",
    "DATASET_URI",
    "ColumnExpectation",
    "DatasetSpec",
    "EstimatorSpec",
    "EvaluationSpec",
    "Expectations",
    "FeedbackSpec",
    "Gate",
    "SignificanceSpec",
    "TrainingJobSpec",
]

DATASET_URI = r"^(s3://[^/]+/.+|builtin://(iris|wine|breast_cancer|diabetes))$"
BUILTIN_TARGET = "target"  # the column name scikit-learn gives a toy set's target
_ESTIMATOR_ENUM: list[JsonValue] = [*sorted(ESTIMATORS)]


class ColumnExpectation(ApiModel):
    """What the values of one column must look like before training may start."""

    type: Literal["int", "float", "bool", "string", "category"] | None = Field(
        default=None,
        description="Expected kind of values: int, float, bool, string or category.",
    )
    min: float | None = Field(default=None, description="Smallest allowed value (numeric).")
    max: float | None = Field(default=None, description="Largest allowed value (numeric).")
    nullable: bool = Field(default=True, description="Whether missing values are allowed.")
    allowed: list[str] | None = Field(
        default=None,
        max_length=1000,
        description="The only allowed values, compared as strings (quote numbers in YAML).",
    )


class Expectations(ApiModel):
    """Data validation run before any training; a violation fails the TrainingJob."""

    min_rows: Int64 | None = Field(default=None, ge=0, description="Fewest rows accepted.")
    max_rows: Int64 | None = Field(default=None, ge=0, description="Most rows accepted.")
    columns: dict[str, ColumnExpectation] = Field(
        default_factory=dict,
        description="Expectations per column name; a listed column must exist.",
    )


class FeedbackSpec(ApiModel):
    """Labelled production rows: the model's logged predictions joined with the labels
    uploaded under <prefix>/<model>/labels/ (docs/api.md, "Ground truth")."""

    enabled: bool = Field(default=False, description="Whether production rows are used.")
    window_seconds: Int64 = Field(
        default=604800,
        ge=60,
        le=90 * 86400,
        description="Seconds of logged predictions (by request time, up to the run's start) "
        "whose labelled rows are used.",
    )
    mode: Literal["Append", "Replace"] = Field(
        default="Append",
        description="Append adds the production rows to the dataset; Replace trains on "
        "them alone (the dataset then only names the target and features).",
    )
    max_rows: Int64 = Field(
        default=100000,
        ge=1,
        le=10_000_000,
        description="Most production rows used (the newest); bounds the run's memory.",
    )


class DatasetSpec(ApiModel):
    """The training data: one table in S3, or a scikit-learn toy set."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.uri.startsWith('builtin://') || has(self.target)",
                    "message": "dataset.target is required for s3:// datasets",
                }
            ]
        }
    )

    uri: str = Field(
        description="s3://bucket/key of a CSV or Parquet file, or builtin://<name> for a "
        "scikit-learn toy set (iris, wine, breast_cancer, diabetes).",
        max_length=2048,
        pattern=DATASET_URI,
    )
    format: Literal["csv", "parquet"] | None = Field(
        default=None,
        description="File format: csv or parquet. Default: from the key's extension "
        "(.csv, .parquet, .pq).",
    )
    target: str | None = Field(
        default=None,
        min_length=1,
        description="Column to predict. Required for s3:// datasets; builtin:// sets use 'target'.",
    )
    features: list[str] = Field(
        default_factory=list,
        description="Columns used as model inputs. Default: every column but the target.",
    )
    expectations: Expectations | None = Field(
        default=None, description="Data validation before training."
    )
    feedback: FeedbackSpec | None = Field(
        default=None,
        description="Add labelled production rows (logged predictions joined with labels).",
    )

    @property
    def feedback_enabled(self) -> bool:
        return self.feedback is not None and self.feedback.enabled

    @model_validator(mode="after")
    def _check_source(self) -> "DatasetSpec":
        if self.is_builtin:
            return self
        if self.target is None:
            raise ValueError("dataset.target is required for s3:// datasets")
        if self.format is None and self.inferred_format is None:
            raise ValueError(
                "dataset.format is required when the key does not end in .csv, .parquet or .pq"
            )
        return self

    @property
    def is_builtin(self) -> bool:
        return self.uri.startswith("builtin://")

    @property
    def inferred_format(self) -> Literal["csv", "parquet"] | None:
        key = self.uri.lower()
        if key.endswith(".csv"):
            return "csv"
        if key.endswith((".parquet", ".pq")):
            return "parquet"
        return None

    @property
    def resolved_format(self) -> Literal["csv", "parquet"] | None:
        """The file format to read (None for builtin:// sets)."""
        return None if self.is_builtin else (self.format or self.inferred_format)

    @property
    def target_column(self) -> str:
        return self.target or BUILTIN_TARGET


class EstimatorSpec(ApiModel):
    """The scikit-learn estimator to fit, from an allowlist."""

    type: str = Field(
        description="Full import path of an allowed scikit-learn estimator, e.g. "
        "sklearn.linear_model.LogisticRegression.",
        json_schema_extra={"enum": _ESTIMATOR_ENUM},
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Constructor parameters of the estimator, e.g. {C: 1.0, max_iter: 200}.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    @field_validator("type")
    @classmethod
    def _allowed(cls, value: str) -> str:
        if value not in ESTIMATORS:
            raise ValueError(f"{value!r} is not an allowed estimator; one of: {sorted(ESTIMATORS)}")
        return value

    @property
    def task(self) -> Task:
        return ESTIMATORS[self.type]


class Gate(ApiModel):
    """A bound a metric must meet for the model to be blessed."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.min) || has(self.max)", "message": "a gate needs min or max"},
                {
                    "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
                    "message": "a gate's min must not exceed its max",
                },
            ]
        }
    )

    metric: Metric = Field(description="Name of the metric the gate checks.")
    min: float | None = Field(default=None, description="The metric must be at least this.")
    max: float | None = Field(default=None, description="The metric must be at most this.")

    @model_validator(mode="after")
    def _bounded(self) -> "Gate":
        if self.min is None and self.max is None:
            raise ValueError("a gate needs min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("a gate's min must not exceed its max")
        return self


class SignificanceSpec(ApiModel):
    """Whether beating the champion must be statistically significant, and by which test."""

    test: Literal["PairedBootstrap", "McNemar", "None"] = Field(
        description="PairedBootstrap: the paired bootstrap of the key metric's delta on the "
        "same rows (any metric). McNemar: McNemar's test on which rows each model gets right "
        "(key metric accuracy only). None: the improvement only has to be positive.",
    )
    alpha: float = Field(
        default=0.05,
        gt=0,
        lt=1,
        description="Significance level: the improvement counts only when the test's "
        "two-sided p-value is below alpha.",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self > 0.0 && self < 1.0", "message": "alpha must be in (0, 1)"}
            ]
        },
    )


class EvaluationSpec(ApiModel):
    """How the fitted model is judged: held-out split, metrics, gates and the baseline."""

    test_size: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        description="Fraction of rows held out for evaluation, between 0 and 1 (exclusive).",
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self > 0.0 && self < 1.0", "message": "testSize must be in (0, 1)"}
            ]
        },
    )
    seed: Int64 = Field(
        default=42, ge=0, le=2**32 - 1, description="Random seed of the split and estimator."
    )
    metrics: list[Metric] = Field(
        default_factory=list,
        max_length=len(Metric),
        description="Metrics to compute; the first is the key metric compared with the "
        "baseline. Default: accuracy, f1_macro (classification) or r2, rmse, mae "
        "(regression).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    gates: list[Gate] = Field(
        default_factory=list,
        max_length=32,
        description="Bounds every one of which the model must meet to be blessed.",
    )
    baseline: Literal["champion", "none"] = Field(
        default="champion",
        description="What the model must beat: the current champion, or none.",
    )
    min_improvement: float = Field(
        default=0.0,
        ge=0,
        description="How much the key metric must improve on the baseline (absolute, in the "
        "metric's better direction) for the model to be blessed.",
    )
    significance: SignificanceSpec | None = Field(
        default=None,
        description="Require the improvement over the champion to be statistically "
        "significant. Default: none (a positive improvement of at least minImprovement "
        "suffices; the p-value and confidence interval are still reported).",
    )
    on_incomparable_champion: Literal["Block", "GatesOnly"] = Field(
        default="Block",
        description="What happens when the champion cannot be loaded, scored or compared on "
        "rows it never trained on: Block (default) does not bless the model; GatesOnly "
        "judges it on its gates alone.",
    )

    @field_validator("metrics")
    @classmethod
    def _unique(cls, value: list[Metric]) -> list[Metric]:
        if len(set(value)) != len(value):
            raise ValueError("metrics must not repeat")
        return value


class TrainingJobSpec(ApiModel):
    """One training run: data, estimator, evaluation and where the artifacts go."""

    model: str = model_name_field()
    dataset: DatasetSpec = Field(description="The training data and its expectations.")
    estimator: EstimatorSpec = Field(description="The scikit-learn estimator to fit.")
    evaluation: EvaluationSpec = Field(
        default_factory=EvaluationSpec, description="How the model is evaluated and judged."
    )
    promote: bool = Field(default=True, description="Whether a blessed model becomes the champion.")
    storage: StorageSpec | None = Field(
        default=None, description="Model registry location; the operator's default when unset."
    )
    resources: ResourceRequirements = resources_field()
    pod: PodControls | None = pod_field()
    backoff_limit: Int32 = Field(
        default=2, ge=0, description="Retries of the training pod before the run fails."
    )
    active_deadline_seconds: Int64 = Field(
        default=3600, ge=1, description="Seconds the run may take before it fails."
    )
    ttl_seconds_after_finished: Int32 = Field(
        default=3600,
        # The operator reads the outcome from the pods once the Job concludes: a Job gone
        # within seconds could take it along while the operator is busy or restarting.
        ge=30,
        description="Seconds after the run finishes until its Job and pods are deleted "
        "(the TrainingJob stays); at least 30, so the operator reads the outcome first.",
    )

    @model_validator(mode="after")
    def _metrics_fit_task(self) -> "TrainingJobSpec":
        named = list(self.evaluation.metrics) + [gate.metric for gate in self.evaluation.gates]
        wrong = sorted({metric.value for metric in named if METRIC_TASKS[metric] != self.task})
        if wrong:
            raise ValueError(
                f"metrics {wrong} do not apply to {self.task.value} "
                f"(estimator {self.estimator.type})"
            )
        significance = self.evaluation.significance
        mcnemar = significance is not None and significance.test == "McNemar"
        if mcnemar and self.key_metric != Metric.ACCURACY:
            raise ValueError(
                "evaluation.significance.test McNemar compares which rows each model gets "
                f"right, i.e. accuracy; the key metric is {self.key_metric.value}: use "
                "PairedBootstrap"
            )
        return self

    @property
    def task(self) -> Task:
        return self.estimator.task

    def effective_metrics(self) -> list[Metric]:
        """The metrics to compute: those listed (or the task's defaults), then gate metrics."""
        metrics = list(self.evaluation.metrics or DEFAULT_METRICS[self.task])
        for gate in self.evaluation.gates:
            if gate.metric not in metrics:
                metrics.append(gate.metric)
        return metrics

    @property
    def key_metric(self) -> Metric:
        """The metric compared with the baseline and shown by `kubectl get`."""
        return self.effective_metrics()[0]
