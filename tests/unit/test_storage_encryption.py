"""`storage.encryption`: every object ctrain writes carries it, read back from the S3 API
(moto's server, over HTTP)."""

import json
from pathlib import Path
from typing import Any

import pytest

from ctrain.api import TrainingJobSpec
from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.controller.config import OperatorConfig
from ctrain.controller.trainingjob.builders import SPEC_ANNOTATION, build_job
from ctrain.registry import Registry
from ctrain.storage import encryption_args

pytest_plugins = ["s3_fixtures"]


def spec(bucket: str, encryption: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "model": "iris",
        "dataset": {"uri": "builtin://iris"},
        "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
        "evaluation": {"baseline": "none"},
        "storage": {"bucket": bucket, "prefix": "ctrain", "encryption": encryption},
        **extra,
    }


def headers(s3_client: Any, bucket: str) -> dict[str, tuple[str | None, str | None]]:
    found = {}
    for item in s3_client.list_objects_v2(Bucket=bucket)["Contents"]:
        head = s3_client.head_object(Bucket=bucket, Key=item["Key"])
        found[item["Key"]] = (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId"))
    return found


@pytest.mark.parametrize(
    ("encryption", "expected"),
    [
        ({"type": "AES256"}, ("AES256", None)),
        ({"type": "aws:kms", "kmsKeyId": "alias/ml"}, ("aws:kms", "alias/ml")),
    ],
)
def test_every_object_of_a_training_run_is_encrypted(
    run_train: Any, s3_client: Any, bucket: str, tmp_path: Path, encryption, expected
) -> None:
    code, message, stderr = run_train(spec(bucket, encryption), tmp_path / "result")
    assert code == 0, (message, stderr)
    written = headers(s3_client, bucket)
    prefix = "ctrain/iris/versions/1/"
    assert {prefix + "model.skops", prefix + "metadata.json", prefix + "reference.json"} <= set(
        written
    )
    assert any("champion" in key for key in written)  # the champion log and alias
    for key, sse in written.items():
        assert sse[0] == expected[0], key
        if expected[1]:
            assert sse[1] is not None and sse[1].endswith(expected[1]), key


def test_a_promotion_by_hand_writes_the_champion_log_encrypted(s3_client: Any, bucket: str) -> None:
    """`ctrain models promote` and the like: the registry's own writes (claims, the
    version's objects, the champion log) all carry the encryption."""
    registry = Registry(s3_client, bucket, "ctrain", encryption=encryption_args("AES256", None))
    version = registry.reserve_version("m")
    metadata = ModelMetadata(task="classification", metrics={"accuracy": 0.5})
    registry.publish("m", version, b"model", metadata, Reference(rows=1))
    registry.set_champion("m", version, "test")
    written = headers(s3_client, bucket)
    assert any("champion" in key for key in written)
    assert {sse for sse, _ in written.values()} == {"AES256"}


def test_the_operator_default_reaches_the_trainer_and_the_pods() -> None:
    config = OperatorConfig(s3_sse="aws:kms", s3_sse_kms_key_id="alias/$(X)")
    body = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "tj", "namespace": "ns", "uid": "u"},
    }
    plain = TrainingJobSpec.parse(
        {k: v for k, v in spec("models", {"type": "None"}).items() if k != "storage"}
    )
    job = build_job(body, plain, config)
    template = job["spec"]["template"]
    wire = json.loads(template["metadata"]["annotations"][SPEC_ANNOTATION])
    assert wire["storage"]["encryption"] == {"type": "aws:kms", "kmsKeyId": "alias/$(X)"}
    env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
    assert env["CTRAIN_S3_SSE"] == "aws:kms"
    assert env["CTRAIN_S3_SSE_KMS_KEY_ID"] == "alias/$$(X)"
    own = TrainingJobSpec.parse(spec("models", {"type": "AES256"}))
    wire = json.loads(
        build_job(body, own, config)["spec"]["template"]["metadata"]["annotations"][SPEC_ANNOTATION]
    )
    assert wire["storage"]["encryption"] == {"type": "AES256"}


def test_an_unknown_default_stops_the_operator() -> None:
    with pytest.raises(ValueError, match="server-side encryption"):
        OperatorConfig.from_env({"CTRAIN_S3_SSE": "aes256"})
