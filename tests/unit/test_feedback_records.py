"""Ground truth's small pieces: the degraded decision (fails closed), performance.json
(bounded, encrypted, safe with two writers) and the labels' identity for triggers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ctrain.api import ConditionStatus, Reason
from ctrain.api.contracts import PerformanceHistory, PerformancePoint
from ctrain.feedback import (
    append_point,
    data_identity,
    judge,
    labels_identity,
    performance_key,
    read_history,
)
from ctrain.registry import IntegrityError, Layout
from ctrain.storage import encryption_args

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]


@pytest.mark.parametrize(
    ("metric", "value", "labelled", "status", "reason"),
    [
        ("accuracy", 0.80, 100, ConditionStatus.TRUE, Reason.WORSE_THAN_THRESHOLD),
        ("accuracy", 0.90, 100, ConditionStatus.FALSE, Reason.WITHIN_THRESHOLD),
        ("accuracy", 0.95, 500, ConditionStatus.FALSE, Reason.WITHIN_THRESHOLD),
        # too few labels: Unknown, however bad the value looks
        ("accuracy", 0.10, 99, ConditionStatus.UNKNOWN, Reason.NOT_ENOUGH_LABELS),
        ("accuracy", None, 0, ConditionStatus.UNKNOWN, Reason.NOT_ENOUGH_LABELS),
        # errors and losses: larger is worse
        ("rmse", 0.95, 100, ConditionStatus.TRUE, Reason.WORSE_THAN_THRESHOLD),
        ("rmse", 0.85, 100, ConditionStatus.FALSE, Reason.WITHIN_THRESHOLD),
        ("log_loss", 1.5, 1000, ConditionStatus.TRUE, Reason.WORSE_THAN_THRESHOLD),
    ],
)
def test_degraded_needs_enough_labels_and_follows_the_metric_direction(
    metric: str, value: float | None, labelled: int, status: ConditionStatus, reason: Reason
) -> None:
    judgement = judge(
        metric=metric, value=value, labelled=labelled, threshold=0.9, min_samples=100, version="3"
    )
    assert (judgement.status, judgement.reason) == (status, reason)
    assert (
        judgement.degraded
        == {
            ConditionStatus.TRUE: True,
            ConditionStatus.FALSE: False,
            ConditionStatus.UNKNOWN: None,
        }[status]
    )
    assert judgement.message.startswith("v3: ")


def _point(n: int, value: float = 0.9) -> PerformancePoint:
    return PerformancePoint(
        checked_at=datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n),
        window_seconds=3600, metric="accuracy", value=value, samples=10, labelled=n,
        metrics={"accuracy": value},
    )  # fmt: skip


def test_performance_history_is_bounded_and_encrypted(s3_client: Any, bucket: str) -> None:
    layout = Layout(bucket, "ctrain")
    assert read_history(s3_client, layout, "iris", "2").history == []
    for n in range(5):
        written = append_point(s3_client, layout, "iris", "2", _point(n), limit=3,
                               encryption=encryption_args("AES256", None))  # fmt: skip
    assert [p.labelled for p in written.history] == [2, 3, 4]
    read = read_history(s3_client, layout, "iris", "2")
    assert read == written
    assert read.latest == _point(4)
    key = performance_key(layout, "iris", "2")
    assert key == "ctrain/iris/versions/2/performance.json"
    assert s3_client.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
    raw = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert PerformanceHistory.parse_json(raw).history[0].checked_at.minute == 2


def test_two_writers_keep_each_others_points(s3_client: Any, bucket: str) -> None:
    layout = Layout(bucket, "ctrain")

    def write(offset: int) -> None:
        for n in range(5):
            append_point(s3_client, layout, "iris", "1", _point(offset + n))

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(write, k * 100) for k in range(2)]:
            done.result()  # raises what a writer raised
    points = read_history(s3_client, layout, "iris", "1").history
    # moto's conditional writes are check-then-act, so a lost update is possible there
    # (not on AWS S3, MinIO or Ceph); every point that was kept is intact.
    assert 5 <= len(points) <= 10
    assert len({p.labelled for p in points}) == len(points)


def test_a_corrupt_history_is_an_integrity_error(s3_client: Any, bucket: str) -> None:
    layout = Layout(bucket, "ctrain")
    key = performance_key(layout, "iris", "1")
    s3_client.put_object(Bucket=bucket, Key=key, Body=b'{"model": "iris"}')
    with pytest.raises(IntegrityError, match=r"performance\.json of iris v1"):
        read_history(s3_client, layout, "iris", "1")


def test_labels_identity_changes_only_with_label_objects(s3_client: Any, bucket: str) -> None:
    layout = Layout(bucket, "ctrain")
    assert labels_identity(s3_client, layout, "iris") is None
    put = s3_client.put_object
    put(Bucket=bucket, Key="ctrain/iris/labels/a.csv", Body=b"id,species\nx,setosa\n")
    first = labels_identity(s3_client, layout, "iris")
    assert first is not None and first.startswith("labels:")
    # Logged predictions and other models' labels are not this model's labelled data.
    put(Bucket=bucket, Key="ctrain/iris/predictions/2026/01/01/p.parquet", Body=b"...")
    put(Bucket=bucket, Key="ctrain/other/labels/a.csv", Body=b"id,species\nx,setosa\n")
    put(Bucket=bucket, Key="ctrain/iris/labels/notes.txt", Body=b"not a label object")
    assert labels_identity(s3_client, layout, "iris") == first
    # A replaced object (new ETag) and a new object are new labelled data.
    put(Bucket=bucket, Key="ctrain/iris/labels/a.csv", Body=b"id,species\nx,virginica\n")
    second = labels_identity(s3_client, layout, "iris")
    put(Bucket=bucket, Key="ctrain/iris/labels/b.parquet", Body=b"...")
    third = labels_identity(s3_client, layout, "iris")
    assert len({first, second, third}) == 3


def test_data_identity_includes_the_labels() -> None:
    assert data_identity('"etag1"', None) == '"etag1"'
    assert data_identity('"etag1"', "labels:ab") == '"etag1"+labels:ab'
    assert data_identity(None, "labels:ab") == "+labels:ab"
    assert data_identity('"etag1"', "labels:ab") != data_identity('"etag1"', "labels:cd")
