"""The API models: valid objects parse with the documented defaults, invalid ones name the field."""

import copy
import importlib
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from sklearn.base import is_classifier, is_regressor

import ctrain.api
from ctrain.api import (
    DEFAULT_METRICS,
    ESTIMATORS,
    HIGHER_IS_BETTER,
    METRIC_TASKS,
    METRICS,
    Condition,
    ConditionStatus,
    ConditionType,
    ContinuousTraining,
    ContinuousTrainingSpec,
    Metric,
    ModelDeployment,
    ModelDeploymentSpec,
    Reason,
    Task,
    TrainingJob,
    TrainingJobPhase,
    TrainingJobSpec,
    TrainingJobStatus,
    higher_is_better,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
KINDS = {kind.KIND: kind for kind in (TrainingJob, ModelDeployment, ContinuousTraining)}

TJ_SPEC: dict[str, Any] = {
    "model": "iris",
    "dataset": {"uri": "builtin://iris"},
    "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
}
CSV_SPEC: dict[str, Any] = {
    "model": "churn",
    "dataset": {"uri": "s3://data/churn.csv", "target": "churned"},
    "estimator": {"type": "sklearn.ensemble.RandomForestClassifier", "params": {"n": 1}},
}
REGRESSION_SPEC: dict[str, Any] = {
    "model": "houses",
    "dataset": {"uri": "builtin://diabetes"},
    "estimator": {"type": "sklearn.linear_model.Ridge"},
}
MD_SPEC: dict[str, Any] = {"model": "iris"}
CT_SPEC: dict[str, Any] = {"template": {"spec": TJ_SPEC}}


def with_change(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `base` with the dotted `path` set to `value` (or removed for ...)."""
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


# --- valid objects ---------------------------------------------------------------------


def test_training_job_spec_defaults() -> None:
    spec = TrainingJobSpec.parse(TJ_SPEC)
    assert spec.evaluation.test_size == 0.2
    assert spec.evaluation.seed == 42
    assert spec.evaluation.baseline == "champion"
    assert spec.evaluation.min_improvement == 0.0
    assert spec.evaluation.metrics == []
    assert spec.promote is True
    assert spec.storage is None
    assert spec.resources.to_wire() == {}
    assert (spec.backoff_limit, spec.active_deadline_seconds) == (2, 3600)
    assert spec.ttl_seconds_after_finished == 3600
    assert spec.task is Task.CLASSIFICATION
    assert spec.dataset.target_column == "target"
    assert spec.dataset.resolved_format is None


def test_model_deployment_spec_defaults() -> None:
    spec = ModelDeploymentSpec.parse(MD_SPEC)
    assert (spec.version, spec.replicas, spec.progress_deadline_seconds) == ("champion", 1, 300)
    assert spec.strategy.type == "RollingUpdate"
    assert spec.strategy.canary is None
    canary = spec.strategy.canary_settings
    assert (canary.weight, canary.promote_after_seconds, canary.max_error_rate) == (20, 300, 0.01)
    drift = spec.monitoring.drift
    assert (drift.enabled, drift.threshold, drift.min_samples, drift.interval_seconds) == (
        False,
        0.2,
        500,
        60,
    )


def test_continuous_training_spec_defaults() -> None:
    spec = ContinuousTrainingSpec.parse(CT_SPEC)
    assert spec.concurrency_policy == "Forbid"
    assert (spec.successful_runs_history_limit, spec.failed_runs_history_limit) == (3, 1)
    assert spec.suspend is False
    assert spec.triggers.schedule is None
    assert spec.triggers.on_new_data is None
    assert spec.triggers.on_drift is None
    full = ContinuousTrainingSpec.parse(
        {**CT_SPEC, "triggers": {"onNewData": {}, "onDrift": {"deployment": "iris-serving"}}}
    )
    assert full.triggers.on_new_data is not None
    assert full.triggers.on_new_data.poll_interval_seconds == 300
    assert full.triggers.on_drift is not None
    assert full.triggers.on_drift.cooldown_seconds == 3600


@pytest.mark.parametrize(
    ("uri", "fmt", "expected"),
    [
        ("s3://b/k/data.csv", None, "csv"),
        ("s3://b/k/data.CSV", None, "csv"),
        ("s3://b/k/data.parquet", None, "parquet"),
        ("s3://b/k/data.pq", None, "parquet"),
        ("s3://b/k/export", "parquet", "parquet"),
        ("s3://b/k/data.csv", "parquet", "parquet"),
    ],
)
def test_dataset_format_defaults_from_extension(uri: str, fmt: str | None, expected: str) -> None:
    dataset = {"uri": uri, "target": "y", **({"format": fmt} if fmt else {})}
    spec = TrainingJobSpec.parse({**CSV_SPEC, "dataset": dataset})
    assert spec.dataset.resolved_format == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (TJ_SPEC, [Metric.ACCURACY, Metric.F1_MACRO]),
        (REGRESSION_SPEC, list(DEFAULT_METRICS[Task.REGRESSION])),
        (
            with_change(TJ_SPEC, "evaluation", {"metrics": ["f1_weighted"]}),
            [Metric.F1_WEIGHTED],
        ),
        (
            with_change(
                TJ_SPEC,
                "evaluation",
                {"metrics": ["accuracy"], "gates": [{"metric": "log_loss", "max": 0.5}]},
            ),
            [Metric.ACCURACY, Metric.LOG_LOSS],
        ),
    ],
)
def test_effective_metrics(spec: dict[str, Any], expected: list[Metric]) -> None:
    parsed = TrainingJobSpec.parse(spec)
    assert parsed.effective_metrics() == expected
    assert parsed.key_metric == expected[0]


def test_wire_format_is_camel_case_and_round_trips() -> None:
    spec = TrainingJobSpec.parse(
        with_change(CSV_SPEC, "storage", {"bucket": "models", "secretRef": "s3"})
    )
    wire = spec.to_wire()
    assert wire["evaluation"]["testSize"] == 0.2
    assert wire["activeDeadlineSeconds"] == 3600
    assert wire["storage"] == {"bucket": "models", "secretRef": "s3"}
    assert "test_size" not in wire["evaluation"]
    assert TrainingJobSpec.parse(wire) == spec
    # snake_case names work in Python too (populate_by_name).
    assert TrainingJobSpec.model_validate({**TJ_SPEC, "backoff_limit": 5}).backoff_limit == 5


def test_parse_accepts_read_only_mapping_views() -> None:
    """kopf hands handlers Mapping views, not dicts."""
    body: MappingProxyType[str, Any] = MappingProxyType(
        {
            "apiVersion": "ctrain.dev/v1alpha1",
            "kind": "TrainingJob",
            "metadata": MappingProxyType({"name": "iris-1", "namespace": "ml"}),
            "spec": MappingProxyType({**TJ_SPEC, "dataset": MappingProxyType(TJ_SPEC["dataset"])}),
        }
    )
    job = TrainingJob.parse(body)
    assert (job.name, job.namespace, job.spec.model) == ("iris-1", "ml", "iris")
    assert TrainingJobSpec.parse(body["spec"]).model == "iris"


def test_status_serializes_like_metav1() -> None:
    when = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    status = TrainingJobStatus(
        phase=TrainingJobPhase.SUCCEEDED,
        observed_generation=1,
        conditions=[
            Condition(
                type=ConditionType.READY,
                status=ConditionStatus.TRUE,
                reason=Reason.JOB_SUCCEEDED,
                last_transition_time=when,
            )
        ],
        model_version="3",
        metrics={"accuracy": 0.97},
        blessed=True,
    )
    wire = status.to_wire()
    assert wire["phase"] == "Succeeded"
    assert wire["modelVersion"] == "3"
    assert wire["conditions"] == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "JobSucceeded",
            "message": "",
            "lastTransitionTime": "2026-11-22T08:00:00Z",
        }
    ]
    assert TrainingJobStatus.parse(wire).conditions[0].last_transition_time == datetime(
        2026, 11, 22, 8, 0, tzinfo=UTC
    )


def test_status_ignores_fields_it_does_not_know() -> None:
    status = TrainingJobStatus.parse({"phase": "Running", "fromANewerOperator": 1})
    assert status.phase is TrainingJobPhase.RUNNING


# --- invalid objects -------------------------------------------------------------------

INVALID = [
    # (id, model, data, field named in the error)
    ("model-uppercase", TrainingJobSpec, with_change(TJ_SPEC, "model", "Iris"), "model"),
    ("model-underscore", TrainingJobSpec, with_change(TJ_SPEC, "model", "my_model"), "model"),
    ("model-too-long", TrainingJobSpec, with_change(TJ_SPEC, "model", "a" * 64), "model"),
    ("model-missing", TrainingJobSpec, with_change(TJ_SPEC, "model", ...), "model"),
    ("uri-http", TrainingJobSpec, with_change(TJ_SPEC, "dataset.uri", "http://x/y.csv"), "uri"),
    ("uri-no-key", TrainingJobSpec, with_change(TJ_SPEC, "dataset.uri", "s3://bucket/"), "uri"),
    ("uri-builtin", TrainingJobSpec, with_change(TJ_SPEC, "dataset.uri", "builtin://mnist"), "uri"),
    ("format", TrainingJobSpec, with_change(CSV_SPEC, "dataset.format", "json"), "format"),
    (
        "significance-test",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation", {"significance": {"test": "TTest"}}),
        "evaluation.significance.test",
    ),
    (
        "significance-alpha",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation", {"significance": {"test": "McNemar", "alpha": 1.5}}),
        "evaluation.significance.alpha",
    ),
    (
        "mcnemar-needs-accuracy",
        TrainingJobSpec,
        with_change(
            TJ_SPEC, "evaluation", {"metrics": ["f1_macro"], "significance": {"test": "McNemar"}}
        ),
        "McNemar compares which rows each model gets right",
    ),
    (
        "on-incomparable-champion",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation", {"onIncomparableChampion": "Ignore"}),
        "evaluation.onIncomparableChampion",
    ),
    ("s3-no-target", TrainingJobSpec, with_change(CSV_SPEC, "dataset.target", ...), "target"),
    (
        "no-extension",
        TrainingJobSpec,
        with_change(CSV_SPEC, "dataset.uri", "s3://b/export"),
        "dataset.format",
    ),
    (
        "estimator",
        TrainingJobSpec,
        with_change(TJ_SPEC, "estimator.type", "sklearn.cluster.KMeans"),
        "estimator.type",
    ),
    (
        "estimator-short-name",
        TrainingJobSpec,
        with_change(TJ_SPEC, "estimator.type", "LogisticRegression"),
        "estimator.type",
    ),
    (
        "params-not-object",
        TrainingJobSpec,
        with_change(TJ_SPEC, "estimator.params", [1]),
        "params",
    ),
    ("test-size-0", TrainingJobSpec, with_change(TJ_SPEC, "evaluation.testSize", 0), "testSize"),
    ("test-size-1", TrainingJobSpec, with_change(TJ_SPEC, "evaluation.testSize", 1), "testSize"),
    ("seed", TrainingJobSpec, with_change(TJ_SPEC, "evaluation.seed", -1), "seed"),
    (
        "metric-unknown",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation.metrics", ["auc"]),
        "metrics",
    ),
    (
        "metric-repeated",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation.metrics", ["accuracy", "accuracy"]),
        "metrics",
    ),
    (
        "metric-wrong-task",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation.metrics", ["r2"]),
        "do not apply to classification",
    ),
    (
        "gate-unbounded",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation.gates", [{"metric": "accuracy"}]),
        "min or max",
    ),
    (
        "gate-min-above-max",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation.gates", [{"metric": "accuracy", "min": 1, "max": 0}]),
        "must not exceed",
    ),
    (
        "gate-wrong-task",
        TrainingJobSpec,
        with_change(REGRESSION_SPEC, "evaluation.gates", [{"metric": "accuracy", "min": 0.5}]),
        "do not apply to regression",
    ),
    ("baseline", TrainingJobSpec, with_change(TJ_SPEC, "evaluation.baseline", "best"), "baseline"),
    (
        "min-improvement",
        TrainingJobSpec,
        with_change(TJ_SPEC, "evaluation.minImprovement", -0.1),
        "minImprovement",
    ),
    ("backoff", TrainingJobSpec, with_change(TJ_SPEC, "backoffLimit", -1), "backoffLimit"),
    (
        "deadline",
        TrainingJobSpec,
        with_change(TJ_SPEC, "activeDeadlineSeconds", 0),
        "activeDeadlineSeconds",
    ),
    (
        "ttl",
        TrainingJobSpec,
        with_change(TJ_SPEC, "ttlSecondsAfterFinished", 29),
        "ttlSecondsAfterFinished",
    ),
    ("storage-bucket", TrainingJobSpec, with_change(TJ_SPEC, "storage", {}), "bucket"),
    (
        "storage-endpoint",
        TrainingJobSpec,
        with_change(TJ_SPEC, "storage", {"bucket": "models", "endpoint": "minio:9000"}),
        "endpoint",
    ),
    (
        "storage-prefix-slash",
        TrainingJobSpec,
        with_change(TJ_SPEC, "storage", {"bucket": "models", "prefix": "/ctrain/"}),
        "prefix",
    ),
    ("unknown-field", TrainingJobSpec, with_change(TJ_SPEC, "replicas", 2), "replicas"),
    ("typo", TrainingJobSpec, with_change(TJ_SPEC, "evaluation.test_szie", 0.3), "test_szie"),
    ("md-version", ModelDeploymentSpec, with_change(MD_SPEC, "version", "v3"), "version"),
    ("md-version-0", ModelDeploymentSpec, with_change(MD_SPEC, "version", "0"), "version"),
    ("md-version-int", ModelDeploymentSpec, with_change(MD_SPEC, "version", 3), "version"),
    ("md-replicas", ModelDeploymentSpec, with_change(MD_SPEC, "replicas", 101), "replicas"),
    ("md-replicas-neg", ModelDeploymentSpec, with_change(MD_SPEC, "replicas", -1), "replicas"),
    (
        "md-strategy",
        ModelDeploymentSpec,
        with_change(MD_SPEC, "strategy", {"type": "BlueGreen"}),
        "strategy.type",
    ),
    (
        "md-canary-weight",
        ModelDeploymentSpec,
        with_change(MD_SPEC, "strategy", {"type": "Canary", "canary": {"weight": 100}}),
        "weight",
    ),
    (
        "md-canary-error-rate",
        ModelDeploymentSpec,
        with_change(MD_SPEC, "strategy", {"type": "Canary", "canary": {"maxErrorRate": 2}}),
        "maxErrorRate",
    ),
    (
        "md-canary-without-type",
        ModelDeploymentSpec,
        with_change(MD_SPEC, "strategy", {"canary": {"weight": 10}}),
        "only used with type: Canary",
    ),
    (
        "md-drift-interval",
        ModelDeploymentSpec,
        with_change(MD_SPEC, "monitoring", {"drift": {"intervalSeconds": 1}}),
        "intervalSeconds",
    ),
    (
        "md-deadline",
        ModelDeploymentSpec,
        with_change(MD_SPEC, "progressDeadlineSeconds", 0),
        "progressDeadlineSeconds",
    ),
    ("ct-template", ContinuousTrainingSpec, {}, "template"),
    (
        "ct-template-spec",
        ContinuousTrainingSpec,
        with_change(CT_SPEC, "template.spec.model", "Bad"),
        "template.spec.model",
    ),
    (
        "ct-schedule",
        ContinuousTrainingSpec,
        with_change(CT_SPEC, "triggers", {"schedule": "every night"}),
        "schedule",
    ),
    (
        "ct-schedule-seconds",
        ContinuousTrainingSpec,
        with_change(CT_SPEC, "triggers", {"schedule": "0 0 3 * * *"}),
        "schedule",
    ),
    (
        "ct-time-zone",
        ContinuousTrainingSpec,
        with_change(CT_SPEC, "triggers", {"schedule": "@daily", "timeZone": "Mars/Olympus"}),
        "timeZone",
    ),
    (
        "ct-poll",
        ContinuousTrainingSpec,
        with_change(CT_SPEC, "triggers", {"onNewData": {"pollIntervalSeconds": 5}}),
        "pollIntervalSeconds",
    ),
    (
        "ct-drift-deployment",
        ContinuousTrainingSpec,
        with_change(CT_SPEC, "triggers", {"onDrift": {}}),
        "deployment",
    ),
    (
        "ct-concurrency",
        ContinuousTrainingSpec,
        with_change(CT_SPEC, "concurrencyPolicy", "Allow"),
        "concurrencyPolicy",
    ),
    (
        "ct-history",
        ContinuousTrainingSpec,
        with_change(CT_SPEC, "successfulRunsHistoryLimit", -1),
        "successfulRunsHistoryLimit",
    ),
]


@pytest.mark.parametrize(
    ("model", "data", "named"), [case[1:] for case in INVALID], ids=[case[0] for case in INVALID]
)
def test_invalid_spec_is_rejected_naming_the_field(
    model: type[TrainingJobSpec], data: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        model.parse(data)
    # The dotted location and the message of every error, as a user would read them.
    report = "\n".join(
        ".".join(str(part) for part in error["loc"]) + ": " + error["msg"]
        for error in raised.value.errors()
    )
    assert named in report


@pytest.mark.parametrize(
    "body",
    [
        {"apiVersion": "ctrain.dev/v1", "kind": "TrainingJob", "spec": TJ_SPEC},
        {"apiVersion": "ctrain.dev/v1alpha1", "kind": "ModelDeployment", "spec": TJ_SPEC},
        {"apiVersion": "ctrain.dev/v1alpha1", "kind": "TrainingJob"},
    ],
    ids=["api-version", "kind", "no-spec"],
)
def test_invalid_whole_object_is_rejected(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TrainingJob.parse(body)


# --- catalogs and constants ------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(ESTIMATORS))
def test_allowed_estimator_exists_and_does_its_task(path: str) -> None:
    module, _, name = path.rpartition(".")
    estimator = getattr(importlib.import_module(module), name)()
    if ESTIMATORS[path] is Task.CLASSIFICATION:
        assert is_classifier(estimator)
    else:
        assert is_regressor(estimator)


def test_metric_catalog_is_consistent() -> None:
    assert set(METRICS) == {metric.value for metric in Metric}
    assert set(METRIC_TASKS) == set(Metric)
    assert set(Metric) >= HIGHER_IS_BETTER
    assert higher_is_better("accuracy")
    assert higher_is_better("r2")
    assert not any(higher_is_better(name) for name in ("log_loss", "mae", "mse", "rmse", "mape"))
    for task, defaults in DEFAULT_METRICS.items():
        assert all(METRIC_TASKS[metric] is task for metric in defaults)


def test_condition_vocabulary() -> None:
    pattern = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    assert all(pattern.match(reason) for reason in Reason)
    assert {"Ready", "DataValidated", "Trained", "Blessed", "Progressing", "Degraded"} <= set(
        ConditionType
    )
    trainer_reasons = {
        "InvalidSpec",
        "DatasetNotFound",
        "DatasetUnreadable",
        "DataValidationFailed",
        "UnknownEstimator",
        "InvalidParams",
        "TrainingFailed",
        "StorageError",
    }
    assert trainer_reasons <= set(Reason)


def test_public_names_are_pinned() -> None:
    assert set(ctrain.api.__all__) == {
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
        "PredictionLogSpec",
        "PodControls",
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
    }
    assert all(hasattr(ctrain.api, name) for name in ctrain.api.__all__)


# --- samples and docs ------------------------------------------------------------------

EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_examples_exist() -> None:
    assert {path.name for path in EXAMPLES} >= {
        "trainingjob-iris.yaml",
        "trainingjob-csv.yaml",
        "modeldeployment-iris.yaml",
        "continuoustraining-iris.yaml",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_parses(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        KINDS[document["kind"]].parse(document)


def test_api_reference_samples_parse() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    kinds = set()
    for block in blocks:
        document = yaml.safe_load(block)
        if isinstance(document, dict) and document.get("apiVersion") == "ctrain.dev/v1alpha1":
            KINDS[document["kind"]].parse(document)
            kinds.add(document["kind"])
    assert kinds == set(KINDS)
