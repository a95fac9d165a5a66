"""Closed-loop HTTP/1.1 load generator for the serving benchmark.

One process, one asyncio (uvloop) event loop, `--concurrency` keep-alive connections,
each sending the same pre-rendered POST request as soon as the previous answer is in.
It speaks just enough HTTP (status line, Content-Length) to stay far cheaper per
request than the servers it measures, so it is not the bottleneck; run.py pins it to
its own core. It needs nothing beyond ctrain's pinned dependencies.

Latency is measured per request from write to the last byte of the response. Only
requests completed inside the measured window (after `--warmup`) count. Prints one
JSON object: requests, errors, seconds, rps, p50_ms, p90_ms, p99_ms, the server's CPU
milliseconds per request (`--server-pgid`) and the load generator's own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

try:
    import uvloop
except ImportError:  # pragma: no cover - plain asyncio still works, just slower
    uvloop = None  # type: ignore[assignment]


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgid: int | None) -> float:
    """CPU time (user + system) of every live process in a process group, from /proc.

    Contention on a shared machine changes wall-clock throughput from run to run; the
    server's own CPU time per request is much more stable, so run.py reports both.
    """
    if pgid is None:
        return 0.0
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


class _Stats:
    def __init__(self) -> None:
        self.measuring = False
        self.running = True
        self.latencies: list[int] = []
        self.errors = 0
        self.first_error: str | None = None


class _Connection(asyncio.Protocol):
    """Sends `request`, waits for one full response, repeats."""

    def __init__(self, request: bytes, stats: _Stats, done: asyncio.Future[None]) -> None:
        self.request = request
        self.stats = stats
        self.done = done
        self.buffer = b""
        self.sent_at = 0
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end].lower()
        marker = head.find(b"content-length:")
        if marker < 0:
            self._fail("response without Content-Length")
            return
        line_end = head.find(b"\r\n", marker)
        length = int(head[marker + 15 : line_end if line_end >= 0 else None])
        total = end + 4 + length
        if len(self.buffer) < total:
            return
        status = int(head[9:12])
        elapsed = time.perf_counter_ns() - self.sent_at
        body = self.buffer[end + 4 : total]
        self.buffer = self.buffer[total:]
        if self.stats.measuring:
            self.stats.latencies.append(elapsed)
            if status != 200:
                self.stats.errors += 1
                if self.stats.first_error is None:
                    self.stats.first_error = f"HTTP {status}: {body[:200]!r}"
        if self.stats.running:
            self._send()
        elif not self.done.done():
            self.done.set_result(None)

    def _fail(self, why: str) -> None:
        self.stats.errors += 1
        if self.stats.first_error is None:
            self.stats.first_error = why
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.stats.running:
            self._fail(f"connection lost: {exc}")
        if not self.done.done():
            self.done.set_result(None)


async def run(
    url: str,
    body: bytes,
    concurrency: int,
    warmup: float,
    duration: float,
    server_pgid: int | None = None,
) -> dict[str, float | int | str | None]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    request = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    stats = _Stats()
    done: list[asyncio.Future[None]] = []
    transports = []
    for _ in range(concurrency):
        future: asyncio.Future[None] = loop.create_future()
        transport, _protocol = await loop.create_connection(
            functools.partial(_Connection, request, stats, future), host, port
        )
        transports.append(transport)
        done.append(future)
    await asyncio.sleep(warmup)
    cpu_start = os.times()
    server_cpu_start = group_cpu_seconds(server_pgid)
    stats.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    stats.measuring = False
    seconds = time.perf_counter() - started
    cpu_end = os.times()
    server_cpu = group_cpu_seconds(server_pgid) - server_cpu_start
    stats.running = False
    await asyncio.wait(done, timeout=10)
    for transport in transports:
        transport.close()
    latencies = np.asarray(stats.latencies, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99]) if len(latencies) else [0, 0, 0]
    return {
        "requests": len(latencies),
        "errors": stats.errors,
        "first_error": stats.first_error,
        "seconds": round(seconds, 3),
        "rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(p50), 3),
        "p90_ms": round(float(p90), 3),
        "p99_ms": round(float(p99), 3),
        "server_cpu_ms_per_request": (
            round(server_cpu * 1000 / len(latencies), 3) if server_pgid and len(latencies) else None
        ),
        "loadgen_cpu_seconds": round(
            (cpu_end.user - cpu_start.user) + (cpu_end.system - cpu_start.system), 2
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="http://host:port/v2/models/<name>/infer")
    parser.add_argument("--body", type=Path, required=True, help="file with the JSON request")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--server-pgid", type=int, help="measure this process group's CPU")
    args = parser.parse_args(argv)
    scenario = run(
        args.url,
        args.body.read_bytes(),
        args.concurrency,
        args.warmup,
        args.duration,
        args.server_pgid,
    )
    result = uvloop.run(scenario) if uvloop is not None else asyncio.run(scenario)
    if not result["requests"]:
        result["errors"] = int(result["errors"] or 0) + 1
        result["first_error"] = result["first_error"] or "no request completed"
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
