"""The model registry against a real S3 API (moto's server over HTTP)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.registry import (
    IntegrityError,
    InvalidReference,
    Registry,
    StorageUnavailable,
    UntrustedModel,
    VersionConflict,
    VersionNotFound,
    sha256_hex,
)
from ctrain.storage import S3Client, make_s3_client, parse_s3_uri

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

MODEL = "iris"


def _fitted_bytes(c: float = 1.0) -> bytes:
    x, y = load_iris(return_X_y=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
    return skops.io.dumps(pipeline.fit(x, y))


MODEL_BYTES = _fitted_bytes()


def _publish(registry: Registry, accuracy: float = 0.9, **extra: Any) -> str:
    version = registry.reserve_version(MODEL)
    metadata = {"task": "classification", "metrics": {"accuracy": accuracy}, **extra}
    registry.publish(
        MODEL, version, MODEL_BYTES, ModelMetadata.parse(metadata), Reference(rows=150)
    )
    return version


def _keys(s3: S3Client, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


class _Untrusted:
    """A type skops does not know: a model.skops holding it must never be loaded."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def test_versions_are_sequential_and_visible_only_when_published(registry: Registry) -> None:
    assert registry.list_versions(MODEL) == []
    first = registry.reserve_version(MODEL)
    second = registry.reserve_version(MODEL)
    assert (first, second) == ("1", "2")
    assert registry.list_versions(MODEL) == []  # claimed, not published
    with pytest.raises(VersionNotFound):
        registry.metadata(MODEL, first)
    registry.publish(MODEL, second, MODEL_BYTES, ModelMetadata(), Reference(rows=1))
    assert registry.list_versions(MODEL) == ["2"]
    assert registry.reserve_version(MODEL) == "3"


def test_list_versions_sorts_numerically(registry: Registry) -> None:
    for _ in range(11):
        _publish(registry)
    assert registry.list_versions(MODEL) == [str(n) for n in range(1, 12)]
    assert registry.resolve(MODEL, "latest") == "11"


def test_concurrent_reservations_are_unique(s3_client: S3Client, bucket: str) -> None:
    # One registry per thread, like separate trainer pods (boto3 clients are thread-safe).
    results: list[str] = []
    errors: list[Exception] = []
    barrier = threading.Barrier(8)
    lock = threading.Lock()

    def trainer() -> None:
        registry = Registry(s3_client, bucket, "ctrain")
        try:
            barrier.wait()
            for _ in range(3):
                version = registry.reserve_version(MODEL)
                with lock:
                    results.append(version)
        except Exception as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=trainer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 24
    assert len(set(results)) == 24, sorted(results, key=int)
    assert min(int(v) for v in results) == 1


def test_publish_writes_three_artifacts_with_sha(
    registry: Registry, s3_client: S3Client, bucket: str
) -> None:
    clock_time = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    registry = Registry(s3_client, bucket, "ctrain", clock=lambda: clock_time)
    version = registry.reserve_version(MODEL)
    written = registry.publish(
        MODEL, version, MODEL_BYTES, ModelMetadata(metrics={"accuracy": 0.97}), Reference(rows=3)
    ).to_wire()
    prefix = f"ctrain/{MODEL}/versions/1/"
    assert _keys(s3_client, bucket) == [
        prefix + ".claim",
        prefix + "metadata.json",
        prefix + "model.skops",
        prefix + "reference.json",
    ]
    stored = s3_client.get_object(Bucket=bucket, Key=prefix + "model.skops")["Body"].read()
    metadata = registry.metadata(MODEL, version).to_wire()
    assert metadata == written
    assert metadata["modelSha256"] == sha256_hex(stored) == sha256_hex(MODEL_BYTES)
    assert metadata["modelFile"] == "model.skops"
    assert metadata["createdAt"] == "2026-11-22T10:00:00Z"
    assert (metadata["model"], metadata["version"]) == (MODEL, "1")
    assert registry.reference(MODEL, version).to_wire() == {"rows": 3, "features": {}}
    assert registry.artifact_uri(MODEL, version) == f"s3://{bucket}/{prefix}"


def test_load_model_round_trip(registry: Registry) -> None:
    version = _publish(registry)
    model = registry.load_model(MODEL, version)
    x, _ = load_iris(return_X_y=True)
    assert model.predict(x[:3]).tolist() == [0, 0, 0]
    loaded = registry.load(MODEL, "latest")
    assert loaded.version == version
    assert loaded.metadata.metrics == {"accuracy": 0.9}


def test_corrupted_model_is_refused(registry: Registry, s3_client: S3Client, bucket: str) -> None:
    version = _publish(registry)
    key = f"ctrain/{MODEL}/versions/{version}/model.skops"
    tampered = bytearray(MODEL_BYTES)
    tampered[len(tampered) // 2] ^= 0xFF
    s3_client.put_object(Bucket=bucket, Key=key, Body=bytes(tampered))
    with pytest.raises(IntegrityError, match="sha256"):
        registry.load_model(MODEL, version)


def test_untrusted_types_are_refused_before_loading(registry: Registry) -> None:
    data = skops.io.dumps({"model": _Untrusted()})
    version = registry.reserve_version(MODEL)
    registry.publish(MODEL, version, data, ModelMetadata(), Reference(rows=0))
    with pytest.raises(UntrustedModel, match="_Untrusted") as caught:
        registry.load_model(MODEL, version)
    assert any(name.endswith("_Untrusted") for name in caught.value.untrusted)


def test_failed_publish_leaves_no_visible_version(
    registry: Registry, s3_client: S3Client, bucket: str
) -> None:
    # Fail the metadata.json upload through botocore's own event hooks, after the
    # model and reference have been written, as a network failure would.
    def fail_metadata(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith("metadata.json"):
            raise ConnectionError("injected: connection reset")

    s3_client.meta.events.register("provide-client-params.s3.PutObject", fail_metadata)
    version = registry.reserve_version(MODEL)
    with pytest.raises(ConnectionError):
        registry.publish(MODEL, version, MODEL_BYTES, ModelMetadata(), Reference(rows=0))
    s3_client.meta.events.unregister("provide-client-params.s3.PutObject", fail_metadata)

    assert registry.list_versions(MODEL) == []
    assert _keys(s3_client, bucket) == [f"ctrain/{MODEL}/versions/{version}/.claim"]
    with pytest.raises(VersionNotFound):
        registry.resolve(MODEL, version)
    # The number stays taken: the next run gets a new one.
    assert registry.reserve_version(MODEL) == str(int(version) + 1)


def test_publish_refuses_an_existing_version(registry: Registry) -> None:
    version = _publish(registry)
    with pytest.raises(VersionConflict):
        registry.publish(MODEL, version, MODEL_BYTES, ModelMetadata(), Reference(rows=0))


def test_resolve(registry: Registry) -> None:
    with pytest.raises(VersionNotFound, match="no champion"):
        registry.resolve(MODEL, "champion")
    with pytest.raises(VersionNotFound, match="no versions"):
        registry.resolve(MODEL, "latest")
    one, two = _publish(registry), _publish(registry)
    registry.set_champion(MODEL, one, "first")
    assert registry.resolve(MODEL, "champion") == one
    assert registry.resolve(MODEL, "latest") == two
    assert registry.resolve(MODEL, 2) == two
    with pytest.raises(VersionNotFound):
        registry.resolve(MODEL, "7")
    for bad in ("v1", "0", "-1", "../x", ""):
        with pytest.raises(InvalidReference):
            registry.resolve(MODEL, bad)
    with pytest.raises(InvalidReference):
        registry.list_versions("../other")


def test_champion_moves_are_logged_and_rolled_back(registry: Registry) -> None:
    one, two, three = _publish(registry), _publish(registry), _publish(registry)
    assert registry.champion(MODEL) is None
    assert registry.champion_history(MODEL) == []
    registry.set_champion(MODEL, one, "first")
    registry.set_champion(MODEL, three, "better")
    assert registry.set_champion(MODEL, three, "again") is None  # already champion
    assert registry.champion(MODEL) == three
    history = registry.champion_history(MODEL)
    assert [(c.from_version, c.to_version, c.reason) for c in history] == [
        (None, one, "first"),
        (one, three, "better"),
    ]
    assert registry.previous_champion(MODEL) == one

    change = registry.rollback(MODEL, "bad canary")
    assert (change.from_version, change.to_version) == (three, one)
    assert registry.champion(MODEL) == one
    change = registry.rollback(MODEL, "pin", to=two)
    assert registry.champion(MODEL) == two
    assert len(registry.champion_history(MODEL)) == 4
    with pytest.raises(VersionNotFound):
        registry.set_champion(MODEL, "9", "missing")


def test_rollback_without_history_fails(registry: Registry) -> None:
    one = _publish(registry)
    registry.set_champion(MODEL, one, "first")
    with pytest.raises(VersionNotFound, match="no previous champion"):
        registry.rollback(MODEL, "nothing to go back to")


def test_concurrent_champion_moves_keep_every_log_line(registry: Registry) -> None:
    versions = [_publish(registry) for _ in range(6)]
    barrier = threading.Barrier(len(versions))

    def promote(version: str) -> None:
        barrier.wait()
        registry.set_champion(MODEL, version, f"promote {version}")

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logged = sorted(change.to_version for change in registry.champion_history(MODEL))
    assert logged == sorted(versions)


def test_missing_bucket_is_storage_unavailable(s3_client: S3Client) -> None:
    registry = Registry(s3_client, "no-such-bucket-here", "ctrain")
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        registry.list_versions(MODEL)


def test_malformed_metadata_is_an_integrity_error(
    registry: Registry, s3_client: S3Client, bucket: str
) -> None:
    version = _publish(registry)
    key = f"ctrain/{MODEL}/versions/{version}/metadata.json"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        registry.metadata(MODEL, version)
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps({"metrics": {}}).encode())
    with pytest.raises(IntegrityError, match="modelSha256"):
        registry.load_model(MODEL, version)


def test_empty_prefix_puts_models_at_the_bucket_root(s3_client: S3Client, bucket: str) -> None:
    registry = Registry(s3_client, bucket, "")
    version = registry.reserve_version(MODEL)
    registry.publish(MODEL, version, MODEL_BYTES, ModelMetadata(), Reference(rows=0))
    assert f"{MODEL}/versions/1/metadata.json" in _keys(s3_client, bucket)
    assert np.array_equal(
        registry.load_model(MODEL, version).predict(load_iris(return_X_y=True)[0][:2]), [0, 0]
    )


def test_client_settings_come_from_the_environment() -> None:
    client = make_s3_client({"CTRAIN_S3_ADDRESSING_STYLE": "virtual"})
    assert client.meta.config.s3["addressing_style"] == "virtual"
    assert client.meta.config.retries["mode"] == "standard"
    assert make_s3_client({}).meta.config.s3["addressing_style"] == "path"
    with pytest.raises(ValueError, match="CTRAIN_S3_ADDRESSING_STYLE"):
        make_s3_client({"CTRAIN_S3_ADDRESSING_STYLE": "sideways"})


def test_s3_uris() -> None:
    assert parse_s3_uri("s3://datasets/a/b.csv") == ("datasets", "a/b.csv")
    for bad in ("datasets/a.csv", "s3://bucket", "s3:///key", "https://x/y"):
        with pytest.raises(ValueError, match="s3"):
            parse_s3_uri(bad)


def test_publish_refuses_fields_outside_the_contract(registry: Registry) -> None:
    version = registry.reserve_version(MODEL)
    metadata = ModelMetadata.parse({"metrics": {}, "typoedField": 1})
    with pytest.raises(ValueError, match="typoedField"):
        registry.publish(MODEL, version, MODEL_BYTES, metadata, Reference(rows=0))
    assert registry.list_versions(MODEL) == []
