"""A real `ctrain serve --prediction-log`, stopped with SIGTERM: every logged row is in S3.

A rollout stops old pods with SIGTERM. uvicorn then finishes the requests in progress
and runs the app's shutdown, whose last flush must write every row logged so far. The
flush interval here is an hour, so only that last flush can have written them.
"""

from __future__ import annotations

import asyncio
import io
import signal
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serving_fixtures import iris_classifier, serve_process, write_model_dir

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]


async def _traffic(base: str, n: int) -> list[tuple[str, int]]:
    """n concurrent requests of 1-3 rows, half without an id: (id, rows) of each."""
    x = iris_classifier()[3]

    def body(i: int) -> dict[str, Any]:
        rows = x[i % 150 : i % 150 + 1 + i % 3].tolist()
        doc: dict[str, Any] = {"inputs": [{"name": "input-0", "datatype": "FP64",
                                           "shape": [len(rows), 4], "data": rows}]}  # fmt: skip
        if i % 2:
            doc["id"] = f"client-{i}"
        return doc

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post("/v2/models/iris/infer", json=body(i)) for i in range(n))
        )
    assert [r.status_code for r in responses] == [200] * n
    return [(r.json()["id"], r.json()["outputs"][0]["shape"][0]) for r in responses]


def test_sigterm_writes_every_logged_row(
    tmp_path: Path, s3_client: Any, bucket: str, s3_env: dict[str, str]
) -> None:
    model, metadata, reference, _ = iris_classifier()
    model_dir = write_model_dir(tmp_path / "iris", model, metadata, reference)
    options = ["--bucket", bucket, "--prefix", "ctrain", "--prediction-log",
               "--prediction-log-flush-seconds", "3600", "--pod-name", "iris-abc",
               "--sse", "AES256"]  # fmt: skip
    with serve_process(model_dir, tmp_path / "serve.log", *options) as server:
        answered = asyncio.run(_traffic(server.base, 60))
        assert s3_client.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="ctrain/iris/predictions/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    assert keys, server.output()
    tables = []
    for key in keys:
        assert key.rsplit("/", 1)[1].startswith("iris-abc-")
        head = s3_client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "AES256"
        data = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        tables.append(pq.read_table(io.BytesIO(data)))
    logged = pa.concat_tables(tables)
    got = sorted(zip(logged.column("id").to_pylist(), logged.column("row").to_pylist(),
                     strict=True))  # fmt: skip
    expected = sorted((request_id, row) for request_id, n in answered for row in range(n))
    assert got == expected
    assert "prediction log:" not in server.output()  # no write failed, no row was lost
