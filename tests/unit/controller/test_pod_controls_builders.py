"""`spec.pod` and the operator's default resources in the trainer's and the server's pods
(pure builders)."""

from typing import Any

import pytest

from ctrain.api import ModelDeploymentSpec, TrainingJobSpec
from ctrain.controller.config import OperatorConfig
from ctrain.controller.modeldeployment.builders import SPEC_HASH, build_deployment
from ctrain.controller.podspec import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT
from ctrain.controller.trainingjob.builders import build_job

pytestmark = pytest.mark.unit

POD = {
    "nodeSelector": {"pool": "training"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    },
    "serviceAccountName": "s3-reader",
    "imagePullSecrets": [{"name": "registry-pull"}],
    "priorityClassName": "batch-low",
    "labels": {"team": "ml", "cost-center": "42"},
    "annotations": {"example.com/owner": "ml-platform"},
}
DEFAULTS = {"requests": {"cpu": "250m", "memory": "300Mi"}, "limits": {"memory": "1Gi"}}
OWN = {"requests": {"cpu": "2"}, "limits": {"memory": "4Gi"}}
CONFIG = OperatorConfig(trainer_resources=DEFAULTS, server_resources=DEFAULTS)


def body(kind: str) -> dict[str, Any]:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u-1"},
    }


def trainer_template(extra: dict[str, Any], config: OperatorConfig = CONFIG) -> dict[str, Any]:
    spec = TrainingJobSpec.parse(
        {
            "model": "iris",
            "dataset": {"uri": "builtin://iris"},
            "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
            **extra,
        }
    )
    template: dict[str, Any] = build_job(body("TrainingJob"), spec, config)["spec"]["template"]
    return template


def server_deployment(extra: dict[str, Any], config: OperatorConfig = CONFIG) -> dict[str, Any]:
    spec = ModelDeploymentSpec.parse({"model": "iris", **extra})
    return build_deployment(
        body("ModelDeployment"), spec, config, track="stable", version="3", replicas=2
    )


def server_template(extra: dict[str, Any], config: OperatorConfig = CONFIG) -> dict[str, Any]:
    template: dict[str, Any] = server_deployment(extra, config)["spec"]["template"]
    return template


BUILDERS = [
    pytest.param(trainer_template, id="trainer"),
    pytest.param(server_template, id="server"),
]


@pytest.mark.parametrize("template_of", BUILDERS)
def test_pod_controls_reach_the_pod(template_of: Any) -> None:
    plain, controlled = template_of({}), template_of({"pod": POD})
    spec = controlled["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "serviceAccountName"):
        assert spec[key] == POD[key] and key not in plain["spec"]
    assert spec["imagePullSecrets"] == [{"name": "registry-pull"}]
    assert spec["priorityClassName"] == "batch-low"
    labels = controlled["metadata"]["labels"]
    assert labels == {**plain["metadata"]["labels"], "team": "ml", "cost-center": "42"}
    annotations = controlled["metadata"]["annotations"]
    own = {key for key in annotations if key.startswith("ctrain.dev/")}  # e.g. the trainer's spec
    assert own == set(plain["metadata"].get("annotations") or {})
    assert {k: v for k, v in annotations.items() if k not in own} == {
        "example.com/owner": "ml-platform"
    }
    # What keeps the pod restricted and tokenless is not a pod control.
    assert spec["securityContext"] == POD_SECURITY_CONTEXT
    assert spec["automountServiceAccountToken"] is False
    assert spec["containers"][0]["securityContext"] == CONTAINER_SECURITY_CONTEXT


@pytest.mark.parametrize("template_of", BUILDERS)
def test_ctrain_labels_win_over_the_users(template_of: Any) -> None:
    # The CRD refuses these keys; a body that bypassed it still cannot move a selector.
    plain = template_of({})
    sneaky = dict(POD, labels={"app.kubernetes.io/managed-by": "me", "team": "ml"})
    labels = template_of({"pod": sneaky})["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "ctrain"
    assert labels == {**plain["metadata"]["labels"], "team": "ml"}


@pytest.mark.parametrize("template_of", BUILDERS)
@pytest.mark.parametrize(
    ("extra", "config", "expected"),
    [
        ({}, CONFIG, DEFAULTS),
        ({"resources": OWN}, CONFIG, OWN),  # the object's own replace the defaults entirely
        ({}, OperatorConfig(), {}),
    ],
    ids=["operator-default", "object-override", "no-default"],
)
def test_resources(
    template_of: Any, extra: dict[str, Any], config: OperatorConfig, expected: dict[str, Any]
) -> None:
    assert template_of(extra, config)["spec"]["containers"][0]["resources"] == expected


def test_changed_pod_controls_roll_the_serving_pods() -> None:
    before = server_deployment({})["metadata"]["annotations"][SPEC_HASH]
    after = server_deployment({"pod": POD})["metadata"]["annotations"][SPEC_HASH]
    assert before != after


@pytest.mark.parametrize(
    "value",
    [
        '{"requests": {"cpu": "1"}}',
        '{"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}',
    ],
)
def test_operator_reads_default_resources(value: str) -> None:
    import json

    config = OperatorConfig.from_env({"CTRAIN_TRAINER_RESOURCES": value})
    assert config.trainer_resources == json.loads(value) and config.server_resources == {}


@pytest.mark.parametrize("value", ['{"cpu": "1"}', "[1]", "not json"])
def test_a_wrong_default_resources_stops_the_operator(value: str) -> None:
    # json.JSONDecodeError is a ValueError too
    with pytest.raises(ValueError, match=r"CTRAIN_SERVER_RESOURCES|Expecting value"):
        OperatorConfig.from_env({"CTRAIN_SERVER_RESOURCES": value})
