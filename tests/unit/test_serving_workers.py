"""`ctrain serve --workers N`: the pod's metrics and drift whichever worker answers.

In-process: two apps that publish to one directory, as two workers do. Then the real
command with two workers: counts add up on every scrape, a worker killed with SIGKILL is
replaced without pod counters going back, and SIGTERM flushes every worker's
prediction log.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serving_fixtures import iris_classifier, make_app, serve_process, write_model_dir

from ctrain.serving import ServingApp
from ctrain.serving.workers import LIVE_SECONDS, PUBLISH_SECONDS, Peers

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

ROW = [5.1, 3.5, 1.4, 0.2]


def _body(i: int, rows: int = 1) -> dict[str, Any]:
    return {"id": f"r{i}", "inputs": [{"name": "input-0", "datatype": "FP64",
            "shape": [rows, 4], "data": [ROW] * rows}]}  # fmt: skip


def _worker(directory: Path, pid: int) -> tuple[ServingApp, Peers]:
    model, metadata, reference, _ = iris_classifier()
    app = make_app(model, metadata, reference)
    peers = Peers(directory, app, pid=pid)
    peers.attach()
    return app, peers


async def _send(app: ServingApp, n: int, rows: int = 1) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for i in range(n):
            response = await client.post("/v2/models/iris/infer", json=_body(i, rows))
            assert response.status_code == 200


def _sample(app: ServingApp, name: str, labels: dict[str, str] | None = None) -> float:
    return app.metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_two_workers_publish_and_either_answers_for_both(tmp_path: Path) -> None:
    first, first_peers = _worker(tmp_path, pid=101)
    second, second_peers = _worker(tmp_path, pid=102)
    asyncio.run(_send(first, 3, rows=2))
    asyncio.run(_send(second, 5, rows=4))
    second_peers.publish()
    first_peers.publish()
    requests = {"route": "infer", "code": "200"}
    for app in (first, second):
        assert _sample(app, "ctrain_serving_requests_total", requests) == 8
        assert _sample(app, "ctrain_serving_rows_predicted_total", {"model": "iris"}) == 26
        assert _sample(app, "ctrain_serving_model_loaded", {"model": "iris"}) == 1
    drift = asyncio.run(_get(first, "/drift"))
    assert drift["samples"] == 26  # both windows
    assert drift == {**asyncio.run(_get(second, "/drift")), "computedAt": drift["computedAt"]}


def test_a_stale_worker_keeps_its_counts_but_not_its_gauges_or_window(tmp_path: Path) -> None:
    first, _ = _worker(tmp_path, pid=201)
    second, second_peers = _worker(tmp_path, pid=202)
    asyncio.run(_send(second, 4))
    second_peers.publish()
    stale = time.time() - LIVE_SECONDS - 1
    os.utime(tmp_path / "202.json", (stale, stale))  # as a worker that died
    first.metrics.model_failed("Gone")  # this worker's own gauge: not loaded
    requests = {"route": "infer", "code": "200"}
    assert _sample(first, "ctrain_serving_requests_total", requests) == 4
    assert _sample(first, "ctrain_serving_model_loaded", {"model": "iris"}) == 0  # own only
    assert asyncio.run(_get(first, "/drift"))["samples"] == 0


async def _get(app: ServingApp, path: str) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- the real command ------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    """The worker processes (uvicorn's supervisor also keeps a resource tracker)."""
    found = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"multiprocessing.spawn" in cmdline:
            found.append(int(child))
    return found


async def _traffic(base: str, start: int, n: int) -> list[str]:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=0)  # new connections
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        posts = [
            client.post("/v2/models/iris/infer", json=_body(i)) for i in range(start, start + n)
        ]
        responses = await asyncio.gather(*posts)
    assert [r.status_code for r in responses] == [200] * n
    return [r.json()["id"] for r in responses]


def _counted(base: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    match = re.search(r'ctrain_serving_requests_total\{code="200",route="infer"\} (\S+)', text)
    return float(match.group(1)) if match else 0.0


def test_two_worker_processes_count_as_one_pod_and_flush_on_sigterm(
    tmp_path: Path, s3_client: Any, bucket: str, s3_env: dict[str, str]
) -> None:
    model, metadata, reference, _ = iris_classifier()
    model_dir = write_model_dir(tmp_path / "iris", model, metadata, reference)
    options = ["--workers", "2", "--bucket", bucket, "--prefix", "ctrain", "--prediction-log",
               "--prediction-log-flush-seconds", "3600", "--pod-name", "pod"]  # fmt: skip
    env = {"TMPDIR": str(tmp_path)}
    with serve_process(model_dir, tmp_path / "serve.log", *options, env=env) as server:
        workers = _children(server.process.pid)
        assert len(workers) == 2
        sent = asyncio.run(_traffic(server.base, 0, 200))
        time.sleep(2 * PUBLISH_SECONDS)
        assert [_counted(server.base) for _ in range(6)] == [200.0] * 6  # any worker, same
        (state,) = tmp_path.glob("ctrain-serve-*")
        assert {f"{w}.json" for w in workers} <= {p.name for p in state.glob("*.json")}

        killed = json.loads((state / f"{workers[0]}.json").read_text())["metrics"]
        answered_by_killed = dict((tuple(k), v) for k, v in killed["ctrain_serving_requests"])
        lost = answered_by_killed.get(("infer", "200"), 0)  # its log was never flushed
        os.kill(workers[0], signal.SIGKILL)  # the supervisor starts another
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            len(replaced := _children(server.process.pid)) != 2 or workers[0] in replaced
        ):
            time.sleep(0.2)
        assert workers[0] not in replaced and len(replaced) == 2
        _wait_ready(server.base, replaced)
        sent += asyncio.run(_traffic(server.base, 200, 100))
        time.sleep(2 * PUBLISH_SECONDS)
        # The killed worker's published counts stay: the pod's counter never goes back.
        assert [_counted(server.base) for _ in range(6)] == [300.0] * 6
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) in (0, -signal.SIGTERM)
        assert not state.exists()  # the supervisor cleans up
    logged = _logged(s3_client, bucket)
    ids = pa.concat_tables(list(logged.values())).column("id").to_pylist()
    # Every request answered by a worker alive at SIGTERM is in the log, whichever worker
    # answered it; only the killed worker's buffered rows died with it.
    assert set(sent[200:]) <= set(ids)
    assert len(ids) == len(set(ids)) == 300 - lost


def _wait_ready(base: str, workers: list[int]) -> None:
    deadline = time.monotonic() + 60
    ready = 0
    while time.monotonic() < deadline and ready < 20:  # 20 readies in a row: both loaded
        with httpx.Client(base_url=base, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            ready = ready + 1 if c.get("/v2/health/ready").status_code == 200 else 0
        time.sleep(0.05)
    assert ready >= 20, f"workers {workers} not all ready"


def _logged(s3_client: Any, bucket: str) -> dict[str, pa.Table]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="ctrain/iris/predictions/")
    tables = {}
    for entry in listed.get("Contents", []):
        data = s3_client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
        tables[entry["Key"]] = pq.read_table(io.BytesIO(data))
    return tables
