"""The registry's bounded monitoring history, against a real S3 API (moto's server)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest

from ctrain.registry import IntegrityError, InvalidReference, Registry
from ctrain.registry.monitoring import MAX_RECORD_BYTES
from ctrain.storage import S3Client

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

KEY = "ctrain/iris/monitoring/ml/iris-serving.jsonl"


def clocked(s3_client: S3Client, bucket: str) -> Registry:
    start = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    ticks = iter(start + timedelta(minutes=minute) for minute in range(10_000))
    return Registry(s3_client, bucket, "ctrain", clock=lambda: next(ticks))


def drift(score: float) -> dict[str, object]:
    return {"version": "3", "score": score, "samples": 600, "features": {"petal_length": score}}


def test_no_history_yet(registry: Registry) -> None:
    assert registry.monitoring_history("iris", "ml", "iris-serving") == []


def test_records_come_back_in_order_with_their_time(s3_client: S3Client, bucket: str) -> None:
    registry = clocked(s3_client, bucket)
    written = [
        registry.append_monitoring("iris", "ml", "iris-serving", drift(s)) for s in (0.1, 0.2)
    ]
    assert written[0]["time"] == "2026-11-22T10:00:00Z"
    history = registry.monitoring_history("iris", "ml", "iris-serving")
    assert history == written
    assert [r["score"] for r in history] == [0.1, 0.2]
    # One JSON object per line, at the documented key.
    body = s3_client.get_object(Bucket=bucket, Key=KEY)["Body"].read().decode()
    assert [json.loads(line)["score"] for line in body.splitlines()] == [0.1, 0.2]
    # A given time is kept (the operator records when it checked).
    kept = registry.append_monitoring(
        "iris", "ml", "iris-serving", {"time": "2026-01-01T00:00:00Z"}
    )
    assert kept["time"] == "2026-01-01T00:00:00Z"


def test_deployments_and_models_have_their_own_history(registry: Registry) -> None:
    registry.append_monitoring("iris", "ml", "iris-serving", drift(0.1))
    registry.append_monitoring("iris", "staging", "iris-serving", drift(0.2))
    registry.append_monitoring("wine", "ml", "iris-serving", drift(0.3))
    assert [r["score"] for r in registry.monitoring_history("iris", "ml", "iris-serving")] == [0.1]
    assert [r["score"] for r in registry.monitoring_history("iris", "staging", "iris-serving")] == [
        0.2
    ]
    assert [r["score"] for r in registry.monitoring_history("wine", "ml", "iris-serving")] == [0.3]


@pytest.mark.parametrize("limit", [1, 3])
def test_history_keeps_the_newest_records(registry: Registry, limit: int) -> None:
    for score in range(6):
        registry.append_monitoring("iris", "ml", "iris-serving", drift(score), limit=limit)
    history = registry.monitoring_history("iris", "ml", "iris-serving")
    assert [r["score"] for r in history] == list(range(6))[-limit:]


def test_concurrent_writers_keep_every_record(registry: Registry) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            for n in range(5):
                registry.append_monitoring("iris", "ml", "iris-serving", {"worker": worker, "n": n})
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    history = registry.monitoring_history("iris", "ml", "iris-serving")
    assert sorted((r["worker"], r["n"]) for r in history) == [
        (worker, n) for worker in range(4) for n in range(5)
    ]


@pytest.mark.parametrize(
    ("namespace", "deployment"), [("../x", "iris"), ("ml", "a/b"), ("ML", "iris"), ("ml", "")]
)
def test_names_cannot_escape_the_key_layout(
    registry: Registry, namespace: str, deployment: str
) -> None:
    with pytest.raises(InvalidReference):
        registry.append_monitoring("iris", namespace, deployment, drift(0.1))
    with pytest.raises(InvalidReference):
        registry.monitoring_history("iris", namespace, deployment)


def test_records_are_bounded_summaries(registry: Registry) -> None:
    with pytest.raises(ValueError, match="under"):
        registry.append_monitoring("iris", "ml", "iris-serving", {"blob": "x" * MAX_RECORD_BYTES})
    with pytest.raises(ValueError, match="not JSON compliant"):
        registry.append_monitoring("iris", "ml", "iris-serving", {"score": float("nan")})
    with pytest.raises(ValueError, match="limit"):
        registry.append_monitoring("iris", "ml", "iris-serving", drift(0.1), limit=0)
    assert registry.monitoring_history("iris", "ml", "iris-serving") == []


def test_a_corrupt_line_is_an_integrity_error(
    registry: Registry, s3_client: S3Client, bucket: str
) -> None:
    s3_client.put_object(Bucket=bucket, Key=KEY, Body=b'{"score": 0.1}\nnot json\n')
    with pytest.raises(IntegrityError, match="line 2"):
        registry.monitoring_history("iris", "ml", "iris-serving")
