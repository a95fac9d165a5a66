"""Datasets: scikit-learn's toy sets and tables in S3, with their fingerprints."""

from __future__ import annotations

import hashlib

import pytest

from ctrain.api import DatasetSpec, Reason
from ctrain.storage import S3Client
from ctrain.trainer.data import builtin_frame, load_dataset
from ctrain.trainer.errors import TrainerError

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]


@pytest.mark.parametrize(
    ("name", "shape", "first_feature", "labels"),
    [
        ("iris", (150, 5), "sepal_length", {"setosa", "versicolor", "virginica"}),
        ("wine", (178, 14), "alcohol", {"class_0", "class_1", "class_2"}),
        ("breast_cancer", (569, 31), "mean_radius", {"malignant", "benign"}),
        ("diabetes", (442, 11), "age", None),
    ],
)
def test_builtin_sets(
    name: str, shape: tuple[int, int], first_feature: str, labels: set[str] | None
) -> None:
    frame = builtin_frame(name)
    assert frame.shape == shape
    assert frame.columns[0] == first_feature
    assert frame.columns[-1] == "target"
    assert all(column == column.lower() and " " not in column for column in frame.columns)
    if labels is None:
        assert frame["target"].dtype == "float64"
    else:
        assert set(frame["target"]) == labels


def test_builtin_fingerprint_is_stable_and_canonical() -> None:
    spec = DatasetSpec(uri="builtin://iris")
    first, second = load_dataset(spec, None), load_dataset(spec, None)
    assert first.fingerprint == second.fingerprint
    canonical = builtin_frame("iris").to_csv(index=False, lineterminator="\n").encode()
    assert first.fingerprint == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert load_dataset(DatasetSpec(uri="builtin://wine"), None).fingerprint != first.fingerprint


def test_csv_fingerprint_is_the_sha256_of_the_object(s3_client: S3Client, bucket: str) -> None:
    data = b"a,b,label\n1,2.5,x\n3,4.5,y\n"
    s3_client.put_object(Bucket=bucket, Key="t/data.csv", Body=data)
    dataset = load_dataset(DatasetSpec(uri=f"s3://{bucket}/t/data.csv", target="label"), s3_client)
    assert dataset.fingerprint == "sha256:" + hashlib.sha256(data).hexdigest()
    assert dataset.rows == 2
    assert list(dataset.frame.columns) == ["a", "b", "label"]


def test_explicit_format_wins_over_the_extension(s3_client: S3Client, bucket: str) -> None:
    s3_client.put_object(Bucket=bucket, Key="data.txt", Body=b"a,label\n1,x\n2,y\n")
    spec = DatasetSpec(uri=f"s3://{bucket}/data.txt", target="label", format="csv")
    assert load_dataset(spec, s3_client).rows == 2


@pytest.mark.parametrize(
    ("body", "key", "reason"),
    [
        (None, "absent.csv", Reason.DATASET_NOT_FOUND),
        (b"", "empty.csv", Reason.DATASET_UNREADABLE),
        (b"\x00\x01garbage", "bad.parquet", Reason.DATASET_UNREADABLE),
        (b'a,b\n1,"unterminated\n', "bad.csv", Reason.DATASET_UNREADABLE),
    ],
)
def test_dataset_failures(
    s3_client: S3Client, bucket: str, body: bytes | None, key: str, reason: Reason
) -> None:
    if body is not None:
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    with pytest.raises(TrainerError) as caught:
        load_dataset(DatasetSpec(uri=f"s3://{bucket}/{key}", target="b"), s3_client)
    assert caught.value.reason == reason
    assert key in str(caught.value)
