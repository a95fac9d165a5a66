"""Liveness while the largest allowed request is predicted, on a real `ctrain serve`.

The kubelet restarts a container whose liveness probe fails; a server that predicts a
large request on its event loop stops answering the probe for as long as the
prediction takes. Large requests run in a worker thread instead: this test keeps two
requests of the largest allowed size (10,000 rows, seconds of k-d tree queries) in
flight and measures the liveness endpoint and a one-row request meanwhile.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from serving_fixtures import serve_process, slow_classifier, write_model_dir

pytestmark = pytest.mark.unit

ROWS = 10_000


def test_liveness_answers_within_a_second_while_the_largest_request_is_predicted(
    tmp_path: Path,
) -> None:
    model, metadata, x = slow_classifier()
    model_dir = write_model_dir(tmp_path / "slow", model, metadata, None)
    rows = x[:ROWS]
    big = orjson.dumps({"id": "big", "inputs": [{"name": "input-0", "datatype": "FP64",
                        "shape": [ROWS, 8], "data": rows.ravel().tolist()}],
                        "outputs": [{"name": "predict"}]})  # fmt: skip
    small = orjson.dumps({"inputs": [{"name": "input-0", "datatype": "FP64",
                          "shape": [1, 8], "data": rows[0].tolist()}],
                          "outputs": [{"name": "predict"}]})  # fmt: skip
    live_seconds: list[float] = []
    small_seconds: list[float] = []
    done = threading.Event()

    def probe(base: str) -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not done.is_set():
                started = time.perf_counter()
                assert client.get("/v2/health/live").status_code == 200
                live_seconds.append(time.perf_counter() - started)
                started = time.perf_counter()
                assert client.post("/v2/models/slow/infer", content=small).status_code == 200
                small_seconds.append(time.perf_counter() - started)
                time.sleep(0.05)

    with serve_process(model_dir, tmp_path / "serve.log", "--max-request-rows", str(ROWS)) as s:
        prober = threading.Thread(target=probe, args=(s.base,))
        prober.start()
        answers: list[httpx.Response] = []

        def post_big() -> None:
            with httpx.Client(base_url=s.base, timeout=120) as client:
                answers.append(client.post("/v2/models/slow/infer", content=big))

        started = time.perf_counter()
        bigs = [threading.Thread(target=post_big) for _ in range(2)]
        for thread in bigs:
            thread.start()
        for thread in bigs:
            thread.join()
        big_seconds = time.perf_counter() - started
        done.set()
        prober.join()
    assert max(live_seconds) < 1.0, f"liveness took up to {max(live_seconds):.2f} s"
    assert max(small_seconds) < 1.0, f"a one-row request took up to {max(small_seconds):.2f} s"
    assert [a.status_code for a in answers] == [200, 200], [a.text[:200] for a in answers]
    expected = model.predict(rows).tolist()
    for answer in answers:
        assert answer.json()["outputs"][0]["data"] == expected
    assert big_seconds > 2, "the large requests were too quick to prove anything"
    assert len(live_seconds) > 10
    live_ms, small_ms = np.asarray(live_seconds) * 1000, np.asarray(small_seconds) * 1000
    print(
        f"\n2 large requests in {big_seconds:.1f} s; liveness max {live_ms.max():.0f} ms, "
        f"p50 {np.median(live_ms):.1f} ms; one-row request max {small_ms.max():.0f} ms"
    )
