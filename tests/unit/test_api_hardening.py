"""Specs a clumsy or hostile user writes: rejected by the models (and so by the CRDs)."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ctrain.api import ContinuousTrainingSpec, ModelDeploymentSpec, TrainingJobSpec
from ctrain.controller.continuoustraining.triggers import InvalidTrigger, next_slot
from ctrain_dev.generate.crd import build_all

TJ = {
    "model": "m",
    "dataset": {"uri": "builtin://iris"},
    "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
}


@pytest.mark.parametrize(
    "resources",
    [
        {"limit": {"cpu": "1"}},
        {"limits": {"cpu": "two"}},
        {"limits": {"cpu": True}},
        {"requests": {"memory": "1 Gi"}},
        {"claims": [{"nme": "gpu"}]},
    ],
)
def test_resources_are_resource_requirements(resources):
    with pytest.raises(ValidationError):
        TrainingJobSpec.parse({**TJ, "resources": resources})
    with pytest.raises(ValidationError):
        ModelDeploymentSpec.parse({"model": "m", "resources": resources})


def test_quantities_as_in_a_pod():
    spec = TrainingJobSpec.parse(
        {**TJ, "resources": {"limits": {"cpu": 2, "memory": "1Gi"}, "requests": {"cpu": "500m"}}}
    )
    assert spec.resources.to_wire() == {
        "limits": {"cpu": "2", "memory": "1Gi"},
        "requests": {"cpu": "500m"},
    }
    assert TrainingJobSpec.parse(TJ).resources.to_wire() == {}


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 2,4,6,9,11 *"])
def test_a_schedule_that_never_fires_is_rejected(schedule):
    template = {"spec": TJ}
    with pytest.raises(ValidationError, match="never fires"):
        ContinuousTrainingSpec.parse({"template": template, "triggers": {"schedule": schedule}})
    with pytest.raises(InvalidTrigger, match="never fires"):
        next_slot(schedule, None, datetime(2026, 1, 1, tzinfo=UTC))


def test_leap_day_schedules_are_allowed():
    ContinuousTrainingSpec.parse({"template": {"spec": TJ}, "triggers": {"schedule": "0 0 29 2 *"}})


def test_crds_check_names_with_cel():
    crds = build_all()
    rules = {
        crd["spec"]["names"]["kind"]: crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].get(
            "x-kubernetes-validations", []
        )
        for crd in crds.values()
    }
    assert "self.metadata.name.size() <= 63" in rules["TrainingJob"][0]["rule"]
    assert "matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')" in rules["ModelDeployment"][0]["rule"]
