"""The JSON documents ctrain's processes hand each other, one model per document.

Besides the CRDs, these documents cross process boundaries (docs/contracts.md); each is
written and read through the model here, so producer and consumer cannot drift apart:

- `TrainerResult` (`TrainingSucceeded` or `TrainingFailed`): the trainer's termination
  message, read by the operator from the pod status;
- `ModelMetadata`: a registry version's metadata.json, written by the trainer through the
  registry, read by the server, the operator, the trainer (the champion) and `ctrain models`;
- `Reference`: a version's reference.json, the training-data statistics the server
  measures drift against;
- `DriftReport`: the server's `GET /drift`, read by the operator's probe;
- `PerformanceMeasured` or `PerformanceFailed`: the termination message of the
  live-performance pod (`ctrain evaluate-live`), read by the operator;
- `PerformanceHistory`: a version's performance.json, the bounded history of its live
  performance, written by that pod, read by `ctrain models` and reports.

The wire is camelCase, like the CRDs. Reading is tolerant, for forward compatibility:
fields a newer producer adds are ignored (metadata.json keeps them, so `ctrain models
show` prints them). Writing is strict: a producer constructs the model, so every field is
type-checked and nothing undeclared is written (the registry refuses undeclared fields in
metadata.json). Fields marked "omitted when unset" are left out of the JSON, not null.
"""

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

from ctrain.api.common import Time
from ctrain.api.status import Comparison, GateResult

__all__ = [
    "BaselineResult",
    "CategoricalReference",
    "Contract",
    "DatasetRecord",
    "DriftReport",
    "EstimatorRecord",
    "ModelMetadata",
    "NumericReference",
    "PerformanceFailed",
    "PerformanceHistory",
    "PerformanceMeasured",
    "PerformancePoint",
    "PerformanceResult",
    "ProductionRecord",
    "Reference",
    "Rejection",
    "SplitRecord",
    "TrainerResult",
    "TrainingFailed",
    "TrainingSucceeded",
    "VersionPerformance",
    "parse_performance_result",
    "parse_trainer_result",
    "succeeded_from_metadata",
]


def _unset(value: object) -> bool:
    return value is None


class Contract(BaseModel):
    """Base of the process contracts: camelCase JSON, tolerant of fields it does not know."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """Validate a decoded JSON object into this model."""
        return cls.model_validate(dict(data))

    @classmethod
    def parse_json(cls, data: str | bytes) -> Self:
        """Validate a JSON document (bytes from S3, a pod status, an HTTP body)."""
        return cls.model_validate_json(data)

    def to_wire(self, *, exclude_none: bool = False) -> dict[str, Any]:
        """The JSON-ready camelCase dict, as the document is written (`exclude_none`: only
        the fields that have a value, for readers that treat absent and null alike)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=exclude_none)


# --- the trainer's termination message -----------------------------------------------------


class BaselineResult(Contract):
    """The champion a candidate was compared with, scored on the candidate's holdout."""

    version: str = Field(description="The champion's version.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Its scores.")
    comparable: bool | None = Field(
        default=None,
        exclude_if=_unset,
        description="False when it could not be compared (omitted when unset: comparable).",
    )
    note: str | None = Field(default=None, exclude_if=_unset, description="Why not comparable.")


class TrainingSucceeded(Contract):
    """A finished run: the version it registered and how it was judged.

    Every field but `ok` has a default so that a message the trainer had to shorten to fit
    the kubelet's 4096 bytes (see `ctrain.trainer.termination`) still reads as a success.
    """

    ok: Literal[True] = True
    model: str | None = Field(default=None, description="Registry name of the model.")
    version: str | None = Field(default=None, description="The version registered.")
    artifact_uri: str | None = Field(default=None, description="s3:// URI of the version.")
    task: str | None = Field(default=None, description="classification or regression.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Holdout scores.")
    key_metric: str | None = Field(
        default=None, description="The key metric and its value, e.g. accuracy=0.9700."
    )
    baseline: BaselineResult | None = Field(
        default=None, description="The champion compared with; null when there was none."
    )
    blessed: bool = Field(default=False, description="Passed every gate, beat the baseline.")
    promoted: bool = Field(default=False, description="The champion alias moved to it.")
    gates: list[GateResult] = Field(default_factory=list, description="Each gate's outcome.")
    gates_passed: bool | None = Field(
        default=None,
        exclude_if=_unset,
        description="Instead of `gates` in a shortened message (omitted when unset).",
    )
    decision: str | None = Field(default=None, description="Why it was (not) promoted.")
    comparison: Comparison | None = Field(
        default=None,
        exclude_if=_unset,
        description="Challenger against champion on the same unseen rows (omitted when "
        "baseline is none).",
    )
    blessed_reason: str | None = Field(
        default=None,
        exclude_if=_unset,
        description="The Blessed condition's reason, e.g. NotSignificant (omitted when unset).",
    )
    promotion_reason: str | None = Field(
        default=None,
        exclude_if=_unset,
        description="Promoted, NotPromoted or ChampionMoved (omitted when unset).",
    )
    data_fingerprint: str | None = Field(default=None, description="sha256 of the data.")
    rows: int | None = Field(default=None, description="Rows in the dataset.")
    message: str | None = Field(
        default=None,
        exclude_if=_unset,
        description="Only in a message shortened to its minimum (omitted when unset).",
    )


class TrainingFailed(Contract):
    """A failed run: a reason from docs/contracts.md and a human-readable message."""

    ok: Literal[False] = False
    reason: str = Field(description="CamelCase reason, e.g. DataValidationFailed.")
    message: str = Field(description="What went wrong.")


TrainerResult = Annotated[TrainingSucceeded | TrainingFailed, Field(discriminator="ok")]
_TRAINER_RESULT: TypeAdapter[TrainingSucceeded | TrainingFailed] = TypeAdapter(TrainerResult)


def parse_trainer_result(data: str | bytes) -> TrainingSucceeded | TrainingFailed:
    """The termination message as a model; raises pydantic.ValidationError if it is not one."""
    return _TRAINER_RESULT.validate_json(data)


# --- metadata.json ------------------------------------------------------------------------


class EstimatorRecord(Contract):
    """The fitted estimator: its allowlisted type and effective parameters."""

    type: str = Field(description="Import path, e.g. sklearn.linear_model.LogisticRegression.")
    params: dict[str, Any] = Field(default_factory=dict, description="Constructor parameters.")


class ProductionRecord(Contract):
    """Labelled production rows a version was trained on (`dataset.feedback`)."""

    mode: Literal["Append", "Replace"] = Field(description="Append or Replace.")
    window_seconds: int = Field(description="Seconds of logged predictions joined.")
    base_rows: int = Field(description="Rows of the base data set trained on (0: Replace).")
    production_rows: int = Field(description="Labelled production rows added.")
    labelled: int = Field(description="Labelled predictions found in the window.")
    samples: int = Field(description="Logged predictions in the window.")
    truncated: bool = Field(description="Whether maxRows left out older labelled rows.")
    fingerprint: str = Field(description="sha256 of the production rows' content.")


class DatasetRecord(Contract):
    """The data a version was trained on."""

    uri: str = Field(description="s3:// or builtin:// URI.")
    fingerprint: str = Field(
        description="sha256 of the data, e.g. sha256:ab12... (with production rows: of "
        "the base data set's fingerprint and the production rows' content)."
    )
    rows: int = Field(description="Rows trained and evaluated on.")
    production: ProductionRecord | None = Field(
        default=None,
        exclude_if=_unset,
        description="Where the rows came from, when labelled production rows were used.",
    )


class SplitRecord(Contract):
    """How the data was split into training and holdout rows.

    With ``method: contentHash`` (`ctrain.trainer.split`) the split can be recomputed for
    any row from ``seed``, ``testSize``, ``buckets`` and ``columns`` alone, so a later run
    knows which of its rows this version trained on. Without a method (versions written
    before it existed) the split was a seeded random shuffle: which rows it trained on
    cannot be told.
    """

    method: Literal["contentHash"] | None = Field(
        default=None,
        exclude_if=_unset,
        description="contentHash, or omitted for a random split (older versions).",
    )
    test_size: float = Field(description="Fraction held out.")
    seed: int = Field(description="Seed of the split.")
    buckets: int | None = Field(
        default=None,
        exclude_if=_unset,
        description="Hash buckets; a row is held out when its bucket < testSize * buckets.",
    )
    columns: list[str] | None = Field(
        default=None,
        exclude_if=_unset,
        description="The columns whose values are hashed, in order.",
    )
    stratified: bool = Field(description="Whether the split kept the class proportions.")
    train_rows: int = Field(description="Rows fitted on.")
    test_rows: int = Field(description="Rows held out.")


class ModelMetadata(Contract):
    """metadata.json of a registry version; its presence makes the version visible.

    The registry sets `model`, `version`, `modelFile`, `modelSha256` and, when unset,
    `createdAt`; the trainer sets the rest. Unknown fields are kept (a newer trainer's), so
    a document read and printed loses nothing; the registry never writes them.
    """

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, description="Registry name of the model.")
    version: str | None = Field(default=None, description='Version number, e.g. "3".')
    created_at: str | None = Field(default=None, description="RFC 3339 time, UTC.")
    task: str | None = Field(default=None, description="classification or regression.")
    target: str | None = Field(default=None, description="The predicted column.")
    features: list[str] | None = Field(default=None, description="Model inputs, in order.")
    feature_types: dict[str, str] | None = Field(
        default=None, description="numeric or categorical, per feature."
    )
    classes: list[Any] | None = Field(
        default=None, description="Class labels (classification); null for regression."
    )
    estimator: EstimatorRecord | None = Field(default=None, description="What was fitted.")
    primary_metric: str | None = Field(default=None, description="The key metric's name.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Holdout scores.")
    gates: list[GateResult] = Field(default_factory=list, description="Each gate's outcome.")
    baseline: BaselineResult | None = Field(default=None, description="The champion compared.")
    comparison: Comparison | None = Field(
        default=None,
        exclude_if=_unset,
        description="Challenger against champion on the same unseen holdout rows, as judged "
        "before publishing (omitted when unset).",
    )
    blessed: bool | None = Field(default=None, description="Passed gates and baseline.")
    decision: str | None = Field(default=None, description="Why it was (not) promoted.")
    dataset: DatasetRecord | None = Field(default=None, description="The training data.")
    split: SplitRecord | None = Field(default=None, description="The holdout split.")
    package_version: str | None = Field(default=None, description="ctrain's version.")
    training_job: dict[str, str] = Field(
        default_factory=dict, description="name, namespace and uid of the TrainingJob."
    )
    model_file: str | None = Field(default=None, description="model.skops")
    model_sha256: str | None = Field(default=None, description="hex sha256 of model_file.")
    rejected: bool | str | dict[str, Any] | None = Field(
        default=None,
        exclude_if=_unset,
        description="Set when the version failed in production: true, a reason, or an "
        "object with a `reason` (omitted when unset; `ctrain.report.history` reads it).",
    )


class Rejection(Contract):
    """``versions/<n>/rejected.json``: the version failed in production and is not served.

    Written by `Registry.reject`; `champion` and `latest` never resolve to a rejected
    version until it is promoted by hand (which removes the mark and says so in the log).
    """

    reason: str = Field(description="Why it was rejected.")
    by: str = Field(default="", description="Who rejected it, e.g. ModelDeployment ns/name.")
    time: str | None = Field(default=None, description="When, RFC 3339, UTC.")


# --- reference.json -----------------------------------------------------------------------


class NumericReference(Contract):
    """A numeric feature: quantile bins of the training values."""

    kind: Literal["numeric"] = "numeric"
    edges: list[float] = Field(
        default_factory=list, description="Bin edges: first = min, last = max."
    )
    frequencies: list[float] = Field(
        default_factory=list, description="Share of the present values per bin."
    )
    missing: float = Field(default=0.0, description="Share of rows without a value.")


class CategoricalReference(Contract):
    """A categorical feature: the share of each value."""

    kind: Literal["categorical"] = "categorical"
    frequencies: dict[str, float] = Field(
        default_factory=dict, description="Share of the present values per category."
    )
    missing: float = Field(default=0.0, description="Share of rows without a value.")


FeatureReference = Annotated[NumericReference | CategoricalReference, Field(discriminator="kind")]


class Reference(Contract):
    """reference.json: statistics of a version's training split, for drift."""

    rows: int = Field(description="Rows of the training split.")
    features: dict[str, FeatureReference] = Field(
        default_factory=dict, description="Statistics per feature."
    )


# --- GET /drift ---------------------------------------------------------------------------


class DriftReport(Contract):
    """What one serving pod has seen compared with reference.json (`GET /drift`)."""

    model: str = Field(description="The served model.")
    version: str = Field(description="The served version.")
    samples: int = Field(description="Rows in the drift window.")
    score: float | None = Field(description="Mean PSI over the features; null before any row.")
    features: dict[str, float | None] = Field(
        default_factory=dict, description="PSI per monitored feature."
    )
    reference: str | None = Field(description="Where reference.json was read from.")
    computed_at: Time = Field(description="When the report was computed.")


# --- live performance: the evaluate-live pod's termination message, performance.json -----


class VersionPerformance(Contract):
    """One model version's live performance over the window."""

    version: str = Field(description="The model version that made the predictions.")
    value: float | None = Field(
        description="The metric over the labelled predictions; null when none is labelled."
    )
    samples: int = Field(description="Logged predictions of the version in the window.")
    labelled: int = Field(description="Of those, predictions with a label.")
    used: int | None = Field(
        default=None,
        exclude_if=_unset,
        description="Labelled predictions the value was computed on, when fewer than "
        "`labelled` (the row bound; omitted when all were used).",
    )


class PerformanceMeasured(Contract):
    """A finished live-performance check (`ctrain evaluate-live`'s termination message).

    Kept under the kubelet's 4096 bytes by listing at most `MAX_VERSIONS` versions (the
    newest); performance.json of each version has every metric and the history.
    """

    MAX_VERSIONS: ClassVar[int] = 16

    ok: Literal[True] = True
    model: str = Field(description="Registry name of the model.")
    metric: str | None = Field(
        description="The metric computed, e.g. accuracy (null when the model has no version)."
    )
    checked_at: Time = Field(description="The end of the window: when the check ran.")
    window_seconds: int = Field(description="Seconds of predictions read, up to checkedAt.")
    samples: int = Field(description="Logged predictions in the window, every version.")
    labelled: int = Field(description="Of those, predictions with a label.")
    versions: list[VersionPerformance] = Field(
        default_factory=list, description="Per version, newest first."
    )
    skipped_objects: int = Field(
        default=0, description="Label or prediction objects that could not be read."
    )


class PerformanceFailed(Contract):
    """A check that could not run: a reason (InvalidSpec, StorageError, ...) and a message."""

    ok: Literal[False] = False
    reason: str = Field(description="CamelCase reason, e.g. StorageError.")
    message: str = Field(description="What went wrong.")


PerformanceResult = Annotated[PerformanceMeasured | PerformanceFailed, Field(discriminator="ok")]
_PERFORMANCE_RESULT: TypeAdapter[PerformanceMeasured | PerformanceFailed] = TypeAdapter(
    PerformanceResult
)


def parse_performance_result(data: str | bytes) -> PerformanceMeasured | PerformanceFailed:
    """The live-performance termination message as a model; raises pydantic.ValidationError."""
    return _PERFORMANCE_RESULT.validate_json(data)


class PerformancePoint(Contract):
    """One check of one version, as kept in performance.json."""

    checked_at: Time = Field(description="When the check ran (the window's end).")
    window_seconds: int = Field(description="Seconds of predictions read.")
    metric: str = Field(description="The metric the check was asked for.")
    value: float | None = Field(description="Its value; null when nothing was labelled.")
    samples: int = Field(description="Logged predictions of the version in the window.")
    labelled: int = Field(description="Of those, predictions with a label.")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description="Every metric computed (the asked one and the task's defaults).",
    )


class PerformanceHistory(Contract):
    """performance.json of a version: its live performance over time, oldest first.

    Bounded: the writer keeps the newest `limit` points (`ctrain.feedback.history`).
    """

    model: str = Field(description="Registry name of the model.")
    version: str = Field(description="The version measured.")
    history: list[PerformancePoint] = Field(
        default_factory=list, description="Checks, oldest first."
    )

    @property
    def latest(self) -> PerformancePoint | None:
        return self.history[-1] if self.history else None


def succeeded_from_metadata(
    model: str,
    version: str,
    artifact_uri: str,
    metadata: ModelMetadata,
    *,
    promoted: bool,
    decision: str,
    promotion_reason: str | None = None,
) -> TrainingSucceeded:
    """The result of a run read back from its published metadata.json (a run repeated after
    it published, or one whose Job vanished): what the termination message would have said."""
    key = metadata.primary_metric or ""
    value = metadata.metrics.get(key)
    dataset = metadata.dataset
    return TrainingSucceeded(
        model=model,
        version=version,
        artifact_uri=artifact_uri,
        task=metadata.task,
        metrics=metadata.metrics,
        key_metric=None if value is None else f"{key}={value:.4f}",
        baseline=metadata.baseline,
        blessed=bool(metadata.blessed),
        promoted=promoted,
        gates=metadata.gates,
        decision=decision,
        comparison=metadata.comparison,
        promotion_reason=promotion_reason,
        data_fingerprint=None if dataset is None else dataset.fingerprint,
        rows=None if dataset is None else dataset.rows,
    )
