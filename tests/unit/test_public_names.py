"""The public names of `ctrain.api` and `ctrain.registry`, pinned.

Every role imports these packages; a name added, renamed or dropped changes what other
code and other versions rely on, so it must show up here as a deliberate edit. Each
package's `__all__` must also be exactly what it defines at top level (no stray imports).
"""

import types

import pytest

import ctrain.api
import ctrain.registry

pytestmark = pytest.mark.unit

API = [
    "API_VERSION", "DEFAULT_METRICS", "ESTIMATORS", "GROUP", "HIGHER_IS_BETTER", "KINDS",
    "METRICS", "METRIC_TASKS", "VERSION", "ApiModel", "CanarySpec", "ColumnExpectation",
    "Comparison", "ComparisonVerdict", "Condition", "ConditionStatus", "ConditionType",
    "ContinuousTraining",
    "ContinuousTrainingPhase", "ContinuousTrainingSpec", "ContinuousTrainingStatus",
    "DatasetSpec", "DriftMonitoringSpec", "DriftStatus", "EstimatorSpec", "EvaluationSpec",
    "Expectations", "FeedbackSpec", "Gate", "GateResult", "LastTriggered", "Metric",
    "ModelDeployment", "ModelDeploymentPhase", "ModelDeploymentSpec", "ModelDeploymentStatus",
    "MonitoringSpec", "OnDriftTrigger", "OnNewDataTrigger", "OnPerformanceTrigger",
    "PerformanceMonitoringSpec", "PerformanceStatus", "PodControls", "PredictionLogSpec",
    "Reason", "Resource", "SignificanceSpec", "StorageSpec", "StrategySpec",
    "Task", "TemplateMetadata", "Toleration", "TrainingJob", "TrainingJobPhase", "TrainingJobSpec",
    "TrainingJobStatus", "TrainingJobTemplate", "TriggerReason", "TriggersSpec",
    "VersionMetrics", "higher_is_better",
]  # fmt: skip

REGISTRY = [
    "CHAMPION", "LATEST", "METADATA_FILE", "MODEL_FILE", "REFERENCE_FILE", "REJECTED_FILE",
    "TRUSTED_TYPES", "ChampionChange", "ChampionMoved", "IntegrityError", "InvalidReference",
    "JobClaim", "Layout", "LoadedModel",
    "Registry", "RegistryError", "StorageUnavailable", "UntrustedModel", "VersionConflict",
    "VersionNotFound", "sha256_hex",
]  # fmt: skip


def _defined(package: types.ModuleType) -> list[str]:
    """Public top-level names, leaving out the package's own submodules."""
    return sorted(
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )


@pytest.mark.parametrize(
    ("package", "expected"),
    [(ctrain.api, API), (ctrain.registry, REGISTRY)],
    ids=["api", "registry"],
)
def test_public_names_are_pinned(package: types.ModuleType, expected: list[str]) -> None:
    assert sorted(package.__all__) == sorted(expected)
    assert _defined(package) == sorted(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None
