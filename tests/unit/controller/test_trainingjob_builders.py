"""The trainer's Job: the user's spec travels as a file, never through `$(VAR)` expansion."""

import json

from ctrain.api import TrainingJobSpec
from ctrain.api.common import shown, shown_names
from ctrain.controller.config import OperatorConfig
from ctrain.controller.podspec import literal
from ctrain.controller.trainingjob.builders import SPEC_ANNOTATION, SPEC_PATH, build_job

BODY = {
    "apiVersion": "ctrain.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "tj", "namespace": "ns", "uid": "u-1"},
}
HOSTILE = "$(AWS_SECRET_ACCESS_KEY)"


def hostile_job() -> dict:
    spec = TrainingJobSpec.parse(
        {
            "model": "iris",
            "dataset": {"uri": "builtin://iris", "target": HOSTILE},
            "estimator": {
                "type": "sklearn.linear_model.LogisticRegression",
                "params": {HOSTILE: 1},
            },
            "storage": {
                "bucket": "models",
                "prefix": f"p{HOSTILE}",
                "endpoint": f"https://s3.example.com/{HOSTILE}",
            },
        }
    )
    return build_job(BODY, spec, OperatorConfig.from_env({}))


def test_no_user_string_in_command_args_or_unescaped_env():
    job = hostile_job()
    pod = job["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"] == ["ctrain", "train"]
    assert container["args"] == ["--spec-file", SPEC_PATH]
    values = [item["value"] for item in container["env"] if "value" in item]
    for value in values:
        # Every `$` is doubled: the kubelet turns `$$` back into `$` and expands nothing.
        assert "$(" not in value.replace("$$", "")
    assert "p$$(AWS_SECRET_ACCESS_KEY)" in values


def test_the_spec_is_a_downward_api_file_of_a_pod_annotation():
    job = hostile_job()
    pod = job["spec"]["template"]
    wire = json.loads(pod["metadata"]["annotations"][SPEC_ANNOTATION])
    assert wire["estimator"]["params"] == {HOSTILE: 1}
    assert "endpoint" not in wire["storage"]  # the pod learns it from its environment
    volume = next(v for v in pod["spec"]["volumes"] if "downwardAPI" in v)
    item = volume["downwardAPI"]["items"][0]
    assert item["fieldRef"]["fieldPath"] == f"metadata.annotations['{SPEC_ANNOTATION}']"
    mount = next(
        m for m in pod["spec"]["containers"][0]["volumeMounts"] if m["name"] == volume["name"]
    )
    assert f"{mount['mountPath']}/{item['path']}" == SPEC_PATH
    assert mount["readOnly"] is True


def test_literal_doubles_every_dollar():
    assert literal("a$(B)$$c") == "a$$(B)$$$$c"
    assert literal("plain") == "plain"


def test_shown_names_bounds_count_and_width():
    names = [f"n{i}" for i in range(20)]
    assert shown_names(names) == "n0, n1, n2, n3, n4, n5, n6, n7 and 12 more"
    assert shown_names(["a", "b"]) == "a, b"
    assert shown("x" * 100) == "x" * 63 + "…"
    assert len(shown_names(["y" * 1000] * 1000)) < 8 * 66 + 20
