"""The prediction log: batching, sampling, flush on shutdown, storage down, encryption.

Storage is moto's S3 server over HTTP (tests/unit/s3_fixtures.py); "down" is an endpoint
where nothing listens. Objects are read back with pyarrow, as the label join will.
"""

from __future__ import annotations

import asyncio
import io
import random
import re
import time
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serving_fixtures import IRIS_FEATURES, free_port, iris_classifier, make_app, mixed_classifier
from serving_fixtures import regressor as diabetes

from ctrain.registry.layout import Layout
from ctrain.serving import ServingApp
from ctrain.serving.codec import InferRequest
from ctrain.serving.metrics import ServingMetrics
from ctrain.serving.predlog import (
    PredictionLogger,
    PredictionLogSettings,
    S3Sink,
    encryption_args,
)
from ctrain.storage import make_s3_client

pytestmark = [pytest.mark.unit, pytest.mark.anyio]
pytest_plugins = ["s3_fixtures"]

ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
POD = "iris-7d9f-x2x4"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _logger(sink: Any, bucket: str, **settings: Any) -> PredictionLogger:
    return PredictionLogger(
        PredictionLogSettings(**settings), sink, Layout(bucket, "ctrain"), pod=POD,
        metrics=ServingMetrics("iris"), rng=random.Random(0),
    )  # fmt: skip


def _app(logger: PredictionLogger, which: str = "iris") -> ServingApp:
    if which == "shapes":
        model, metadata, reference = mixed_classifier()
        return make_app(model, metadata, reference, prediction_log=logger)
    model, metadata, reference, _ = iris_classifier()
    return make_app(model, metadata, reference, prediction_log=logger)


def _body(rows: list[list[Any]], datatype: str = "FP64", **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "datatype": datatype,
                        "shape": [len(rows), len(rows[0])], "data": rows}], **extra}  # fmt: skip


async def _post(app: ServingApp, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        responses = await asyncio.gather(
            *(client.post(f"/v2/models/{app.holder.name}/infer", json=b) for b in bodies)
        )
    assert [r.status_code for r in responses] == [200] * len(bodies), responses[0].text
    return [r.json() for r in responses]


def _objects(s3_client: Any, bucket: str) -> dict[str, pa.Table]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="ctrain/")
    return {
        o["Key"]: pq.read_table(io.BytesIO(s3_client.get_object(Bucket=bucket, Key=o["Key"])
                                           ["Body"].read()))
        for o in listed.get("Contents", [])
    }  # fmt: skip


async def test_rows_are_batched_into_one_object_with_the_documented_columns(
    s3_client: Any, bucket: str
) -> None:
    logger = _logger(S3Sink(s3_client, bucket, {}), bucket)
    app = _app(logger)
    before = time.time()
    answers = await _post(app, [
        _body(ROWS[:1], id="client-1"),
        _body(ROWS),  # no id: the server makes one and returns it
        _body(ROWS[1:], outputs=[{"name": "predict"}]),  # the log still gets probabilities
    ])  # fmt: skip
    after = time.time()
    assert _objects(s3_client, bucket) == {}  # nothing written before the flush
    await logger.flush()
    ((key, table),) = _objects(s3_client, bucket).items()
    day = time.strftime("%Y/%m/%d", time.gmtime(before))
    assert re.fullmatch(rf"ctrain/iris/predictions/{day}/{POD}-\d{{13}}-\d+-000001\.parquet", key)
    assert table.column_names == [
        "id",
        "row",
        "ts",
        "version",
        *IRIS_FEATURES,
        "prediction",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]
    assert table.schema.field("ts").type == pa.timestamp("ms", tz="UTC")
    generated = answers[1]["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", generated)
    assert answers[0]["id"] == "client-1"
    assert [o["name"] for o in answers[2]["outputs"]] == ["predict"]  # the response is as asked
    rows = table.to_pylist()
    by_request = {(r["id"], r["row"]): r for r in rows}
    assert set(by_request) == {("client-1", 0), (generated, 0), (generated, 1), (generated, 2),
                               (answers[2]["id"], 0), (answers[2]["id"], 1)}  # fmt: skip
    model = iris_classifier()[0]
    for (request_id, row), record in by_request.items():
        x = {"client-1": ROWS[:1], generated: ROWS}.get(request_id, ROWS[1:])[row]
        assert [record[f] for f in IRIS_FEATURES] == x
        assert record["version"] == "3"
        assert record["prediction"] == model.predict([x])[0]
        proba = model.predict_proba([x])[0]
        assert [record[f"proba_{c}"] for c in ("setosa", "versicolor", "virginica")] == (
            pytest.approx(proba.tolist(), rel=1e-12)
        )
        assert before - 0.001 <= record["ts"].timestamp() <= after + 0.001
    assert logger.rows_written.value() == 6
    assert logger.objects_written.value() == 1
    assert logger.buffered_rows == 0


async def test_sampling_is_by_request_and_every_answer_gets_an_id(
    s3_client: Any, bucket: str
) -> None:
    logger = _logger(S3Sink(s3_client, bucket, {}), bucket, sample_rate=0.5)
    answers = await _post(_app(logger), [_body(ROWS) for _ in range(40)])
    await logger.flush()
    tables = list(_objects(s3_client, bucket).values())
    logged = pa.concat_tables(tables).to_pylist() if tables else []
    ids = {a["id"] for a in answers}
    assert len(ids) == 40  # every response has its own id, sampled or not
    rows_by_id: dict[str, list[int]] = {}
    for record in logged:
        rows_by_id.setdefault(record["id"], []).append(record["row"])
    assert set(rows_by_id) <= ids
    assert 5 < len(rows_by_id) < 35  # about half of 40, with the seeded generator
    assert all(sorted(rows) == [0, 1, 2] for rows in rows_by_id.values())  # whole requests


async def test_a_sample_rate_of_zero_logs_nothing(s3_client: Any, bucket: str) -> None:
    logger = _logger(S3Sink(s3_client, bucket, {}), bucket, sample_rate=0.0)
    await _post(_app(logger), [_body(ROWS) for _ in range(5)])
    await logger.flush()
    assert _objects(s3_client, bucket) == {}


async def test_the_shutdown_flushes_what_is_buffered(s3_client: Any, bucket: str) -> None:
    logger = _logger(S3Sink(s3_client, bucket, {}), bucket, flush_seconds=3600)
    app = _app(logger)
    await app.startup()
    answers = await _post(app, [_body(ROWS, id=f"r{i}") for i in range(10)])
    assert _objects(s3_client, bucket) == {}
    await app.shutdown()
    (table,) = _objects(s3_client, bucket).values()
    assert sorted(set(table.column("id").to_pylist())) == sorted(a["id"] for a in answers)
    assert table.num_rows == 30


async def test_storage_down_never_fails_inference_and_the_buffer_is_bounded(
    s3_client: Any, bucket: str, s3_env: dict[str, str]
) -> None:
    dead = make_s3_client(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1,
                          connect_timeout=1)  # fmt: skip
    logger = _logger(S3Sink(dead, bucket, {}), bucket, max_buffer_rows=10)
    app = _app(logger)
    started = time.perf_counter()
    answers = await _post(app, [_body(ROWS, id=f"r{i}") for i in range(4)])
    assert time.perf_counter() - started < 5
    assert [a["id"] for a in answers] == ["r0", "r1", "r2", "r3"]
    assert logger.rows_dropped.value("buffer_full") == 3  # r3 did not fit
    await logger.flush()  # storage refuses: the object is kept for the next flush
    assert logger.write_failures.value() == 1
    assert logger.buffered_rows == 9
    await _post(app, [_body(ROWS[:1], id="r4")])  # 9 + 1 still fits
    await _post(app, [_body(ROWS[:1], id="r5")])  # 10 + 1 does not
    assert logger.rows_dropped.value("buffer_full") == 4
    logger.sink = S3Sink(s3_client, bucket, {})  # storage is back
    await logger.flush()
    tables = _objects(s3_client, bucket)
    assert len(tables) == 2  # the retried object (same key) and the new one
    logged = pa.concat_tables(list(tables.values()))
    assert sorted(zip(logged.column("id").to_pylist(), logged.column("row").to_pylist(),
                      strict=True)) == [(f"r{i}", j) for i in range(3) for j in range(3)] + [
        ("r4", 0)]  # fmt: skip
    assert logger.buffered_rows == 0
    assert logger.rows_written.value() == 10


async def test_a_shutdown_with_storage_down_counts_the_lost_rows(
    bucket: str, s3_env: dict[str, str]
) -> None:
    dead = make_s3_client(endpoint_url=f"http://127.0.0.1:{free_port()}", max_attempts=1,
                          connect_timeout=1)  # fmt: skip
    logger = _logger(S3Sink(dead, bucket, {}), bucket, shutdown_seconds=5)
    app = _app(logger)
    await app.startup()
    await _post(app, [_body(ROWS)])
    await app.shutdown()
    assert logger.rows_dropped.value("shutdown") == 3


async def test_excluded_features_are_not_written(s3_client: Any, bucket: str) -> None:
    logger = _logger(S3Sink(s3_client, bucket, {}), bucket, exclude_columns=("petal_width",))
    await _post(_app(logger), [_body(ROWS)])
    await logger.flush()
    (table,) = _objects(s3_client, bucket).values()
    assert "petal_width" not in table.column_names
    assert "petal_length" in table.column_names


async def test_categorical_features_are_strings_and_missing_is_null(
    s3_client: Any, bucket: str
) -> None:
    logger = _logger(S3Sink(s3_client, bucket, {}), bucket)
    await _post(_app(logger, "shapes"), [_body([["12.5", "blue"], ["7.0", None]], "BYTES")])
    await logger.flush()
    (table,) = _objects(s3_client, bucket).values()
    assert table.schema.field("size").type == pa.float64()
    assert table.schema.field("color").type == pa.string()
    assert table.column("color").to_pylist() == ["blue", None]
    assert table.column("size").to_pylist() == [12.5, 7.0]
    assert {"proba_big", "proba_small"} <= set(table.column_names)


async def test_a_feature_named_like_a_column_is_renamed_and_mapped(
    s3_client: Any, bucket: str
) -> None:
    model, metadata, x = diabetes()
    features = ["id", "prediction", *metadata["features"][2:]]
    logger = _logger(S3Sink(s3_client, bucket, {}), bucket)
    app = make_app(model, {**metadata, "features": features}, prediction_log=logger)
    await _post(app, [_body(x[:2].tolist())])
    await logger.flush()
    (table,) = _objects(s3_client, bucket).values()
    assert table.column_names[:6] == ["id", "row", "ts", "version", "feature.id",
                                      "feature.prediction"]  # fmt: skip
    assert table.column("prediction").type == pa.float64()  # a regressor: no probabilities
    assert table.column("prediction").to_pylist() == pytest.approx(model.predict(x[:2]).tolist())
    mapping = table.schema.metadata[b"ctrain.features"].decode()
    assert '"feature.id": "id"' in mapping and '"x2": "x2"' in mapping


async def test_object_names_never_repeat_across_restarts(s3_client: Any, bucket: str) -> None:
    for start in (1_700_000_000.0, 1_700_000_005.0):  # a container restarted in the same pod
        sink, layout = S3Sink(s3_client, bucket, {}), Layout(bucket, "ctrain")
        logger = PredictionLogger(
            PredictionLogSettings(), sink, layout, pod=POD, clock=lambda t=start: t
        )
        app = _app(logger)
        for _ in range(2):
            await _post(app, [_body(ROWS)])
            await logger.flush()
    keys = sorted(_objects(s3_client, bucket))
    assert len(keys) == 4
    names = [k.rsplit("/", 1)[1] for k in keys]
    assert names[0].startswith(f"{POD}-1700000000000-") and names[0].endswith("-000001.parquet")
    assert names[3].startswith(f"{POD}-1700000005000-") and names[3].endswith("-000002.parquet")


@pytest.mark.parametrize(
    ("sse", "key_id", "expected"),
    [
        ("AES256", None, {"ServerSideEncryption": "AES256"}),
        ("aws:kms", "alias/ml", {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/ml"}),
    ],
)
async def test_objects_are_written_with_server_side_encryption(
    s3_client: Any, bucket: str, sse: str, key_id: str | None, expected: dict[str, str]
) -> None:
    logger = _logger(S3Sink(s3_client, bucket, encryption_args(sse, key_id)), bucket)
    await _post(_app(logger), [_body(ROWS)])
    await logger.flush()
    (key,) = _objects(s3_client, bucket)
    head = s3_client.head_object(Bucket=bucket, Key=key)
    assert head["ServerSideEncryption"] == expected["ServerSideEncryption"]
    if "SSEKMSKeyId" in expected:
        assert head["SSEKMSKeyId"].endswith(expected["SSEKMSKeyId"])


@pytest.mark.parametrize(
    ("sse", "key_id", "error"),
    [
        ("AES256", "alias/ml", "a KMS key id needs --sse aws:kms"),
        (None, "alias/ml", "a KMS key id needs --sse aws:kms"),
        ("aws:rsa", None, "server-side encryption must be one of None, AES256, aws:kms"),
    ],
)
def test_encryption_settings_are_checked(sse: str | None, key_id: str | None, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        encryption_args(sse, key_id)
    assert encryption_args("None", None) == {}


async def test_rows_that_cannot_be_written_are_dropped_and_counted(
    s3_client: Any, bucket: str
) -> None:
    """An object that cannot be built (a bug, not storage) is not retried forever."""
    logger = _logger(S3Sink(s3_client, bucket, {}), bucket)
    app = _app(logger)
    model = app.holder.require()
    unreadable = InferRequest("bad", np.array([["not a number"] * 4], dtype=object), ("predict",))
    logger.record(model, unreadable, {"predict": np.array(["setosa"]),
                                      "predict_proba": np.ones((1, 3))}, time.time())  # fmt: skip
    await logger.flush()
    assert logger.rows_dropped.value("unwritable") == 1
    await _post(app, [_body(ROWS[:1])])
    await logger.flush()
    assert logger.rows_written.value() == 1
    assert logger.buffered_rows == 0
