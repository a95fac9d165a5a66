"""Hundreds of hostile and malformed requests against a real `ctrain serve` process.

The server serves a model with a categorical feature (BYTES input, the hardest case) at
its default limits, except shorter timeouts and a small concurrency limit so slow
clients and saturation show quickly. While the hostile classes run, a prober measures
`/v2/health/live` and a sampler reads the server's RSS from /proc. Then the
concurrency limit is saturated on purpose, and finally 200 concurrent valid requests
with distinct ids must each get their own, correct answer.

Asserted: no 5xx for any client error (503 only when saturated, with Retry-After), no
wrong or mixed answers, RSS bounded, liveness under 1 s throughout, and the same
process alive at the end. A table of the figures is printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import statistics
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson
import pytest
from hostile_requests import (
    INFER,
    Case,
    allocation_bombs,
    bad_structure,
    http_garbage,
    malformed_json,
    over_limits,
    slow_clients,
)
from serving_fixtures import ServerProcess, mixed_classifier, serve_process, write_model_dir

from ctrain.serving.limits import DEFAULT_LIMITS

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(900)]

MAX_CONCURRENCY = 32
RSS_HEADROOM = 400 * 2**20  # over the idle server's RSS


class Monitor(threading.Thread):
    """Samples the server's RSS and times /v2/health/live until stopped."""

    def __init__(self, server: ServerProcess) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.stopped = threading.Event()
        self.rss: list[int] = []
        self.live: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.server.base, timeout=10) as client:
            while not self.stopped.wait(0.05):
                self.rss.append(self.server.rss_bytes())
                started = time.perf_counter()
                try:
                    status = client.get("/v2/health/live").status_code
                except httpx.HTTPError as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.live.append(time.perf_counter() - started)
                if status != 200:
                    self.failures.append(f"liveness answered {status}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model, metadata, reference = mixed_classifier()
    work = tmp_path_factory.mktemp("hostile")
    model_dir = write_model_dir(work / "shapes", model, metadata, reference)
    options = ["--header-timeout", "1", "--body-timeout", "3",
               "--max-concurrency", str(MAX_CONCURRENCY)]  # fmt: skip
    with serve_process(model_dir, work / "serve.log", *options) as server:
        yield server


def _exchange(address: tuple[str, int], payload: bytes, slow: bool) -> int:
    """Send raw bytes; the status code answered, or 0 if the server closed without one."""
    with socket.create_connection(address, timeout=10) as sock:
        with contextlib.suppress(OSError):  # closed on us while sending (431): read the answer
            sock.sendall(payload)
        data = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep and not slow:
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                if len(rest) >= length:
                    break
    if not data.startswith(b"HTTP/1.1 "):
        return 0
    return int(data[9:12])


def _send(case: Case, server: ServerProcess, client: httpx.Client) -> tuple[int, str]:
    if case.raw:
        host, port = server.base.removeprefix("http://").split(":")
        return _exchange((host, int(port)), case.payload, case.slow), ""
    response = client.post(INFER, content=case.payload, headers=case.headers)
    return response.status_code, response.headers.get("retry-after", "")


def _valid_bodies(n: int, seed: int) -> tuple[list[bytes], np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = np.empty((n, 2), dtype=object)
    rows[:, 0] = rng.normal(10, 2, n).round(6)
    rows[:, 1] = rng.choice(["red", "green", "blue", "purple"], n)
    bodies = [orjson.dumps({"id": f"valid-{seed}-{i}", "inputs": [{"name": "input-0",
              "datatype": "BYTES", "shape": [1, 2], "data": [str(rows[i, 0]), rows[i, 1]]}]})
              for i in range(n)]  # fmt: skip
    return bodies, rows


async def _concurrent_valid(base: str, bodies: list[bytes]) -> list[httpx.Response]:
    """All at once over as many connections as the server admits requests."""
    limits = httpx.Limits(
        max_connections=MAX_CONCURRENCY, max_keepalive_connections=MAX_CONCURRENCY
    )
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        return list(await asyncio.gather(*(client.post(INFER, content=b) for b in bodies)))


def _check_answers(responses: list[httpx.Response], rows: np.ndarray, seed: int) -> int:
    """Every 200 carries its own id and its own row's answer; returns how many were 200."""
    model = mixed_classifier()[0]
    x = rows.copy()
    x[:, 0] = x[:, 0].astype(float)
    labels, probas = model.predict(x), model.predict_proba(x)
    answered = 0
    for i, response in enumerate(responses):
        if response.status_code != 200:
            continue
        answered += 1
        body = response.json()
        assert body["id"] == f"valid-{seed}-{i}"
        predict, proba = body["outputs"]
        assert predict["data"] == [labels[i]], (i, body)
        np.testing.assert_allclose(proba["data"], probas[i], rtol=1e-9)
    return answered


def _in_progress(server: ServerProcess) -> float:
    metrics = httpx.get(f"{server.base}/metrics", timeout=10).text
    for line in metrics.splitlines():
        if line.startswith("ctrain_serving_requests_in_progress "):
            return float(line.split()[1])
    raise AssertionError("no ctrain_serving_requests_in_progress in /metrics")


def _saturate(server: ServerProcess, codes: dict[str, Counter[int]]) -> None:
    """Hold every slot with stalled bodies, then check the overflow gets 503 + Retry-After."""
    host, port = server.base.removeprefix("http://").split(":")
    body = b'{"inputs": [{"name": "i", "datatype": "BYTES", "shape": [1, 2], "data": [["1.0", '
    stalled = b"POST " + INFER.encode() + b" HTTP/1.1\r\nHost: t\r\nContent-Length: 999\r\n\r\n"
    with ThreadPoolExecutor(MAX_CONCURRENCY) as pool:
        holders = [pool.submit(_exchange, (host, int(port)), stalled + body, True)
                   for _ in range(MAX_CONCURRENCY)]  # fmt: skip
        deadline = time.monotonic() + 2.5  # within the 3 s body timeout
        while _in_progress(server) < MAX_CONCURRENCY and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _in_progress(server) == MAX_CONCURRENCY
        bodies, _ = _valid_bodies(20, seed=7)
        with httpx.Client(base_url=server.base, timeout=10) as client:
            for b in bodies:
                response = client.post(INFER, content=b)
                codes["saturated"][response.status_code] += 1
                assert response.status_code == 503, response.text
                assert response.headers["retry-after"] == "1"
        for holder in holders:  # each stalled body ends in 408 after the body timeout
            codes["slow client"][holder.result()] += 1
    bodies, rows = _valid_bodies(20, seed=8)
    responses = asyncio.run(_concurrent_valid(server.base, bodies))
    codes["after saturation"].update(r.status_code for r in responses)
    assert _check_answers(responses, rows, seed=8) == 20


def test_hostile_http(server: ServerProcess) -> None:
    rng = random.Random(0)
    pid = server.process.pid
    idle_rss = server.rss_bytes()
    monitor = Monitor(server)
    monitor.start()
    cases = [
        *malformed_json(rng, 60), *bad_structure(), *allocation_bombs(),
        *over_limits(DEFAULT_LIMITS.max_body_bytes), *http_garbage(rng, 200), *slow_clients(),
    ]  # fmt: skip
    rng.shuffle(cases)
    codes: dict[str, Counter[int]] = defaultdict(Counter)
    unexpected: list[str] = []
    background_valid: list[int] = []

    def valid_traffic(stop: threading.Event) -> None:
        """Valid requests all along the hostile phase: they must stay correct."""
        seed = 100
        while not stop.is_set():
            bodies, rows = _valid_bodies(8, seed)
            responses = asyncio.run(_concurrent_valid(server.base, bodies))
            for r in responses:
                codes["valid, during the attack"][r.status_code] += 1
                assert r.status_code == 200 or (r.status_code == 503 and r.headers["retry-after"])
            background_valid.append(_check_answers(responses, rows, seed))
            seed += 1

    stop = threading.Event()
    with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=server.base, timeout=30) as client:
        traffic = pool.submit(valid_traffic, stop)
        results = list(pool.map(lambda case: (case, _send(case, server, client)), cases))
        stop.set()
        traffic.result()
    for case, (status, _) in results:
        codes[case.kind][status] += 1
        if status not in case.expect:
            unexpected.append(f"{case.kind}: {status} for {case.payload[:120]!r}")
    _saturate(server, codes)
    bodies, rows = _valid_bodies(200, seed=1)
    responses = asyncio.run(_concurrent_valid(server.base, bodies))
    codes["valid, 200 concurrent"].update(r.status_code for r in responses)
    answered = _check_answers(responses, rows, seed=1)
    monitor.stopped.set()
    monitor.join()

    total = sum(sum(c.values()) for c in codes.values())
    print(f"\n{'class':<28} {'requests':>8}  codes")
    for kind, counter in codes.items():
        seen = ", ".join(f"{code or 'closed'}: {n}" for code, n in sorted(counter.items()))
        print(f"{kind:<28} {sum(counter.values()):>8}  {seen}")
    live_ms = np.asarray(monitor.live) * 1000
    print(f"{'total':<28} {total:>8}")
    print(f"server RSS: idle {idle_rss / 2**20:.0f} MiB, max {max(monitor.rss) / 2**20:.0f} MiB; "
          f"liveness: {len(live_ms)} probes, p50 {statistics.median(live_ms):.1f} ms, "
          f"max {live_ms.max():.0f} ms")  # fmt: skip

    assert not unexpected, "\n".join(unexpected)
    client_error_classes = set(codes) - {"saturated"}
    fives = {k: c for k in client_error_classes for code, c in codes[k].items() if code >= 500
             and not (k == "valid, during the attack" and code == 503)}  # fmt: skip
    assert not fives, fives
    assert answered == 200
    assert total >= 500
    assert not monitor.failures, monitor.failures[:5]
    assert live_ms.max() < 1000
    assert max(monitor.rss) < idle_rss + RSS_HEADROOM
    assert server.process.poll() is None and server.process.pid == pid
    assert sum(background_valid) > 0
