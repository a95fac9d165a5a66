"""The label join: late, duplicate and missing labels, multi-row requests, the window,
the row bound, unreadable objects, and what the real server logs.

Storage is moto's S3 server over HTTP (tests/unit/s3_fixtures.py). Log objects are
written in the documented format (feedback_fixtures.py); the last test joins what the
server's own prediction logger wrote.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from feedback_fixtures import iris_row, log_table, put_labels, put_log

from ctrain.feedback import ID, LABEL, ROW, Window, class_text, join
from ctrain.registry import Layout

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _window(seconds: int = 3600, *, ahead: int = 60) -> Window:
    # Ends a little ahead: the labels' LastModified and the rows' ts are "now".
    return Window.ending(_now() + timedelta(seconds=ahead), seconds)


def _join(s3: Any, bucket: str, window: Window | None = None, **options: Any) -> Any:
    options.setdefault("max_rows", 1000)
    return join(
        s3,
        Layout(bucket, "ctrain"),
        "iris",
        target="species",
        window=window or _window(),
        **options,
    )


def _labels(pairs: list[tuple[str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["id", "row", "species"])


def _by_key(joined: Any) -> dict[tuple[str, int], Any]:
    return {(r[ID], r[ROW]): r for r in joined.rows.to_dict("records")}


def test_each_logged_row_gets_its_label_and_missing_labels_are_counted(
    s3_client: Any, bucket: str
) -> None:
    ts = _now() - timedelta(minutes=5)
    rows = [
        iris_row("a", "1", ts, "setosa"),
        # one request of three rows: each row is labelled on its own
        iris_row("b", "1", ts, "setosa", row=0),
        iris_row("b", "1", ts, "versicolor", row=1),
        iris_row("b", "1", ts, "virginica", row=2),
        iris_row("c", "2", ts + timedelta(seconds=1), "virginica"),
        iris_row("d", "2", ts + timedelta(seconds=2), "setosa"),
    ]
    put_log(s3_client, bucket, log_table(rows), day=ts, name="pod-1-1-000001")
    # a's label has no row column: row 0; b's row 1 has no label; d has none either
    put_labels(s3_client, bucket, "first.csv", pd.DataFrame({"id": ["a"], "species": ["setosa"]}))
    put_labels(
        s3_client,
        bucket,
        "second.parquet",
        _labels([("b", 0, "setosa"), ("b", 2, "setosa"), ("c", 0, "versicolor")]),
    )

    joined = _join(s3_client, bucket)

    assert {v: (c.samples, c.labelled) for v, c in joined.counts.items()} == {
        "1": (4, 3),
        "2": (2, 1),
    }
    assert (joined.samples, joined.labelled, joined.labels) == (6, 4, 4)
    got = {key: (r["version"], r["prediction"], r[LABEL]) for key, r in _by_key(joined).items()}
    assert got == {
        ("a", 0): ("1", "setosa", "setosa"),
        ("b", 0): ("1", "setosa", "setosa"),
        ("b", 2): ("1", "virginica", "setosa"),
        ("c", 0): ("2", "virginica", "versicolor"),
    }
    assert joined.rows["ts"].is_monotonic_decreasing  # newest first
    assert (joined.skipped, joined.truncated, joined.duplicates) == (0, False, 0)
    assert "sepal_length" not in joined.rows.columns  # features only when asked for
    assert {"proba_setosa", "proba_versicolor", "proba_virginica"} <= set(joined.rows.columns)


def test_labels_that_arrive_late_are_joined_on_the_next_read(s3_client: Any, bucket: str) -> None:
    ts = _now() - timedelta(hours=2)
    rows = [iris_row(f"r{i}", "1", ts + timedelta(seconds=i), "setosa") for i in range(5)]
    put_log(s3_client, bucket, log_table(rows), day=ts, name="pod-1-1-000001")
    window = _window(6 * 3600)

    before = _join(s3_client, bucket, window)
    assert (before.samples, before.labelled, len(before.rows)) == (5, 0, 0)

    put_labels(
        s3_client, bucket, "late.csv", _labels([("r4", 0, "virginica"), ("r1", 0, "setosa")])
    )
    after = _join(s3_client, bucket, window)
    assert (after.samples, after.labelled) == (5, 2)
    assert {k: r[LABEL] for k, r in _by_key(after).items()} == {
        ("r4", 0): "virginica",
        ("r1", 0): "setosa",
    }


def test_the_newest_label_wins(s3_client: Any, bucket: str) -> None:
    ts = _now() - timedelta(minutes=1)
    rows = [iris_row(r, "1", ts, "setosa") for r in ("x", "y", "z")]
    put_log(s3_client, bucket, log_table(rows), day=ts, name="pod-1-1-000001")
    # Within one object the last row wins.
    put_labels(
        s3_client,
        bucket,
        "b-first.csv",
        _labels([("x", 0, "setosa"), ("x", 0, "virginica"), ("y", 0, "setosa")]),
    )
    time.sleep(1.1)  # S3's LastModified has whole seconds
    # Uploaded later, named to sort first: LastModified decides, not the name.
    put_labels(s3_client, bucket, "a-correction.parquet", _labels([("y", 0, "versicolor")]))

    joined = _join(s3_client, bucket)
    assert {k[0]: r[LABEL] for k, r in _by_key(joined).items()} == {
        "x": "virginica",
        "y": "versicolor",
    }
    assert (joined.label_objects, joined.labels) == (2, 2)


def test_labels_written_in_the_same_second_are_ordered_by_key(s3_client: Any, bucket: str) -> None:
    ts = _now() - timedelta(minutes=1)
    put_log(s3_client, bucket, log_table([iris_row("x", "1", ts, "setosa")]), day=ts, name="p-1")
    put_labels(s3_client, bucket, "2026-01-02.csv", _labels([("x", 0, "virginica")]))
    put_labels(s3_client, bucket, "2026-01-01.csv", _labels([("x", 0, "setosa")]))
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="ctrain/iris/labels/")["Contents"]
    if len({o["LastModified"] for o in listed}) != 1:
        pytest.skip("the two uploads straddled a second; the rule under test needs one second")
    assert _by_key(_join(s3_client, bucket))[("x", 0)][LABEL] == "virginica"


def test_the_window_cuts_rows_and_reads_only_its_days(s3_client: Any, bucket: str) -> None:
    now = _now()
    window = Window.ending(now + timedelta(seconds=60), 3600)
    inside = [iris_row("in", "1", now - timedelta(minutes=30), "setosa")]
    too_old = [iris_row("old", "1", window.start - timedelta(seconds=1), "setosa")]
    put_log(
        s3_client, bucket, log_table(inside + too_old), day=now - timedelta(minutes=30), name="p-1"
    )
    # An object under a day outside the window is never listed, whatever its rows say.
    outside_day = window.start - timedelta(days=3)
    put_log(
        s3_client,
        bucket,
        log_table([iris_row("elsewhere", "1", now, "setosa")]),
        day=outside_day,
        name="p-2",
    )
    put_labels(
        s3_client,
        bucket,
        "l.csv",
        _labels([("in", 0, "setosa"), ("old", 0, "setosa"), ("elsewhere", 0, "setosa")]),
    )

    joined = _join(s3_client, bucket, window)
    assert (joined.samples, joined.labelled, joined.prediction_objects) == (1, 1, 1)
    assert list(joined.rows[ID]) == ["in"]


def test_label_objects_older_than_the_window_are_not_read(s3_client: Any, bucket: str) -> None:
    put_labels(s3_client, bucket, "old.csv", _labels([("x", 0, "setosa")]))
    time.sleep(1.1)
    start = _now()
    ts = start + timedelta(seconds=5)
    put_log(s3_client, bucket, log_table([iris_row("x", "1", ts, "setosa")]), day=ts, name="p")
    joined = _join(s3_client, bucket, Window(start, start + timedelta(minutes=5)))
    assert (joined.samples, joined.labelled, joined.label_objects) == (1, 0, 0)


def test_the_row_bound_keeps_the_newest_labelled_rows_and_counts_all(
    s3_client: Any, bucket: str
) -> None:
    base = _now() - timedelta(minutes=30)
    for n in range(3):  # three objects of 10 rows, every row labelled
        rows = [
            iris_row(f"o{n}-{i}", "1", base + timedelta(seconds=60 * n + i), "setosa")
            for i in range(10)
        ]
        put_log(s3_client, bucket, log_table(rows), day=base, name=f"p-{n}")
        put_labels(
            s3_client, bucket, f"l{n}.csv", _labels([(f"o{n}-{i}", 0, "setosa") for i in range(10)])
        )
    joined = _join(s3_client, bucket, max_rows=15)
    assert (joined.samples, joined.labelled, len(joined.rows), joined.truncated) == (
        30,
        30,
        15,
        True,
    )
    # The kept rows are the 15 newest: all of object 2 and the newest 5 of object 1.
    assert sorted(joined.rows[ID]) == sorted(
        [f"o2-{i}" for i in range(10)] + [f"o1-{i}" for i in range(5, 10)]
    )


def test_a_reused_request_id_keeps_the_newest_prediction(s3_client: Any, bucket: str) -> None:
    ts = _now() - timedelta(minutes=10)
    put_log(s3_client, bucket, log_table([iris_row("same", "1", ts, "setosa")]), day=ts, name="p-1")
    put_log(
        s3_client,
        bucket,
        log_table([iris_row("same", "2", ts + timedelta(seconds=30), "virginica")]),
        day=ts,
        name="p-2",
    )
    put_labels(s3_client, bucket, "l.csv", _labels([("same", 0, "virginica")]))
    joined = _join(s3_client, bucket)
    assert (joined.samples, joined.labelled, joined.duplicates) == (2, 2, 1)
    assert list(joined.rows["version"]) == ["2"]


def test_unreadable_objects_are_skipped_and_reported(s3_client: Any, bucket: str) -> None:
    ts = _now() - timedelta(minutes=1)
    put_log(s3_client, bucket, log_table([iris_row("x", "1", ts, "setosa")]), day=ts, name="p-1")
    key = f"ctrain/iris/predictions/{ts:%Y/%m/%d}/broken.parquet"
    s3_client.put_object(Bucket=bucket, Key=key, Body=b"not parquet")
    put_labels(s3_client, bucket, "no-target.csv", pd.DataFrame({"id": ["x"], "label": ["a"]}))
    put_labels(
        s3_client,
        bucket,
        "good.csv",
        pd.DataFrame(
            {"id": ["x", None, "y"], "row": [0, 0, -1], "species": ["setosa", "setosa", "setosa"]}
        ),
    )
    s3_client.put_object(Bucket=bucket, Key="ctrain/iris/labels/README.txt", Body=b"ignored")

    joined = _join(s3_client, bucket)
    assert (joined.labelled, joined.skipped, joined.dropped_labels) == (1, 2, 2)
    assert any("no column 'species'" in s for s in joined.skipped_keys)
    assert any(s.startswith(key) for s in joined.skipped_keys)


def test_features_come_back_under_their_own_names(s3_client: Any, bucket: str) -> None:
    ts = _now() - timedelta(minutes=1)
    rows = [
        {
            "id": "x",
            "row": 0,
            "ts": ts,
            "version": "1",
            "prediction": 1.5,
            "id_feature": 2.0,
            "version_feature": 3.0,
        }
    ]
    table = log_table(
        rows, features=["id_feature", "version_feature"], classes=None, prediction_type=pa.float64()
    )
    # A feature named like a log column is written as feature.<name>, mapped in metadata.
    table = table.rename_columns(
        ["id", "row", "ts", "version", "feature.id", "feature.version", "prediction"]
    ).replace_schema_metadata(
        {"ctrain.features": '{"feature.id": "id", "feature.version": "version"}'}
    )
    put_log(s3_client, bucket, table, day=ts, name="p-1", model="iris")
    put_labels(s3_client, bucket, "l.csv", pd.DataFrame({"id": ["x"], "species": [1.25]}))
    joined = _join(s3_client, bucket, features=True)
    assert joined.features == {"feature.id": "id", "feature.version": "version"}
    (record,) = joined.rows.to_dict("records")
    assert (record["feature.id"], record["feature.version"], record[LABEL]) == (2.0, 3.0, 1.25)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2.0, "3", " 4 ", True, False], ["1", "2", "3", "4", "1", "0"]),
        (["setosa", "1.5", 1.5, None], ["setosa", "1.5", "1.5", "None"]),
        (np.array([0, 1], dtype=np.int64), ["0", "1"]),
    ],
)
def test_class_labels_compare_as_canonical_text(values: Any, expected: list[str]) -> None:
    assert list(class_text(values)) == expected


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_what_the_server_logs_joins_with_labels(s3_client: Any, bucket: str) -> None:
    import httpx
    from serving_fixtures import iris_classifier, make_app

    from ctrain.serving.metrics import ServingMetrics
    from ctrain.serving.predlog import PredictionLogger, PredictionLogSettings, S3Sink

    model, metadata, reference, _ = iris_classifier()
    logger = PredictionLogger(
        PredictionLogSettings(),
        S3Sink(s3_client, bucket, {}),
        Layout(bucket, "ctrain"),
        pod="iris-0",
        metrics=ServingMetrics("iris"),
    )
    app = make_app(model, metadata, reference, prediction_log=logger)
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 4], "data": rows}]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        answer = (await c.post("/v2/models/iris/infer", json=body)).json()
    await logger.flush()
    predicted = next(o["data"] for o in answer["outputs"] if o["name"] == "predict")
    put_labels(s3_client, bucket, "l.csv", _labels([(answer["id"], 1, "setosa")]))

    joined = _join(s3_client, bucket, features=True)
    assert (joined.samples, joined.labelled) == (2, 1)
    (record,) = joined.rows.to_dict("records")
    assert (record["prediction"], record[LABEL]) == (predicted[1], "setosa")
    assert [record[f] for f in joined.features] == rows[1]
