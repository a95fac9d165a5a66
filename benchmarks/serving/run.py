"""Serving benchmark: `ctrain serve` against the HTTP ceiling and MLServer, one command.

Steps (everything it starts is stopped by pid, and every wait has a deadline):
1. fit one scikit-learn model and write it for every server (`servers.py`);
2. write the request bodies (1 row, 32 rows; `outputs: predict` so every server does
   the same work) and what ctrain answers to them, which the ceiling answers verbatim;
3. for each round, for each server: start it, wait until ready, check its answers,
   run `loadgen.py` for each payload (warm-up, then a fixed duration, concurrency 32),
   stop it;
4. print the medians over the rounds, and the ratios: ctrain as a share of the ceiling,
   ctrain against MLServer at its best, the prediction log's cost, two workers against
   one. `--json` also writes the raw results.

One-core servers are pinned to CPU 0 and the load generator to CPU 1 (`--no-pin` to
disable); a two-worker server gets both CPUs and shares them with the load generator.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from servers import (
    HERE,
    MLSERVER,
    MODEL,
    N_FEATURES,
    PYTHON,
    Server,
    ceiling_server,
    ctrain_servers,
    fit_model,
    mlserver_servers,
)

PAYLOAD_ROWS = {"1 row": 1, "32 rows": 32}


def pinned(cpus: set[int] | None) -> Callable[[], None] | None:
    return None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))


@contextlib.contextmanager
def started(server: Server, log: Path, cpus: set[int] | None) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server in its own process group; stop it (and its children) by pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            server.command, stdout=out, stderr=subprocess.STDOUT, cwd=server.cwd,
            env={**os.environ, **server.env}, start_new_session=True, preexec_fn=pinned(cpus),
        )  # fmt: skip
    print(f"  started {server.name} (pid {process.pid}), log {log}", flush=True)
    try:
        yield process
    finally:
        for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)  # the group we created: the server's children
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait)
        print(f"  stopped {server.name} (exit {process.returncode})", flush=True)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before being ready")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s")


def post(url: str, body: bytes) -> dict[str, Any]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return dict(json.loads(response.read()))


def load(url: str, body: Path, args: argparse.Namespace, cpus: set[int] | None,
         server_pgid: int) -> dict[str, Any]:  # fmt: skip
    command = [
        str(PYTHON), str(HERE / "loadgen.py"), "--url", url, "--body", str(body),
        "--concurrency", str(args.concurrency), "--warmup", str(args.warmup),
        "--duration", str(args.duration), "--server-pgid", str(server_pgid),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, check=True, preexec_fn=pinned(cpus),
                          timeout=args.warmup + args.duration + 60)  # fmt: skip
    return dict(json.loads(done.stdout))


def bench(server: Server, bodies: dict[str, Path], expected: dict[str, list[int]],
          args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:  # fmt: skip
    everything = set(range(os.cpu_count() or 1))
    if not args.pin:
        server_cpus = load_cpus = None
    elif server.cores > 1:
        server_cpus, load_cpus = everything, everything
    else:
        server_cpus, load_cpus = {0}, everything - {0} or {0}
    base = f"http://127.0.0.1:{server.port}"
    url = f"{base}/v2/models/{MODEL}/infer"
    results = []
    log = work / f"{server.name.replace(' ', '_').replace(',', '')}.log"
    with started(server, log, server_cpus) as process:
        wait_ready(f"{base}/v2/models/{MODEL}/ready", process, args.ready_timeout)
        for payload, body in bodies.items():
            if server.payload not in (None, payload):
                continue
            outputs = {o["name"]: o for o in post(url, body.read_bytes())["outputs"]}
            got = [int(v) for v in np.ravel(outputs["predict"]["data"])]
            if got != expected[payload]:
                raise RuntimeError(f"{server.name} answered {got}, expected {expected[payload]}")
            # start_new_session=True: the server's process group id is its pid.
            result = load(url, body, args, load_cpus, process.pid)
            result.update(server=server.name, payload=payload)
            print(f"  {payload}: {result}", flush=True)
            results.append(result)
    return results


def summarize(results: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The median of each figure over the rounds, per (server, payload)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for key in dict.fromkeys((r["server"], r["payload"]) for r in results):
        runs = [r for r in results if (r["server"], r["payload"]) == key]
        row: dict[str, Any] = {"rounds": len(runs), "errors": sum(r["errors"] for r in runs)}
        for field in ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request"):
            values = [r[field] for r in runs if r.get(field) is not None]
            row[field] = statistics.median(values) if values else None
        rows[key] = row
    return rows


def table(rows: dict[tuple[str, str], dict[str, Any]]) -> str:
    lines = [f"{'server':<34} {'payload':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
             f"{'errors':>6} {'CPU ms/req':>10}"]  # fmt: skip
    for (server, payload), r in rows.items():
        cpu = r["server_cpu_ms_per_request"]
        lines.append(f"{server:<34} {payload:<8} {r['rps']:>8.0f} {r['p50_ms']:>7.2f} "
                     f"{r['p99_ms']:>7.2f} {r['errors']:>6} {cpu if cpu else '-':>10}")  # fmt: skip
    lines += ["", "ratios (median throughput; CPU per request where both are known):"]
    for payload in PAYLOAD_ROWS:
        ours = rows.get(("ctrain", payload))
        if ours is None:
            continue
        for label, other_name in [
            ("share of the ceiling", "ceiling"),
            ("prediction log on / off", "ctrain, prediction log"),
            ("2 workers / 1", "ctrain, 2 workers"),
        ]:
            other = rows.get((other_name, payload))
            if other is None:
                continue
            a, b = (ours, other) if label == "share of the ceiling" else (other, ours)
            line = f"  {payload:<8} {label:<26} throughput {a['rps'] / b['rps']:6.2f}"
            if a["server_cpu_ms_per_request"] and b["server_cpu_ms_per_request"]:
                cpu = b["server_cpu_ms_per_request"] / a["server_cpu_ms_per_request"]
                line += f"   CPU per request {cpu:5.2f}"
            lines.append(line)
        theirs = [r | {"name": s} for (s, p), r in rows.items()
                  if s.startswith("MLServer") and p == payload]  # fmt: skip
        if theirs:
            best = max(theirs, key=lambda r: r["rps"])
            lines.append(
                f"  {payload:<8} {'ctrain / MLServer best':<26} throughput "
                f"{ours['rps'] / best['rps']:6.1f}   p99 {ours['p99_ms']:.1f} vs "
                f"{best['p99_ms']:.1f} ms ({best['name']})"
            )
    return "\n".join(lines)


def _s3(work: Path) -> tuple[dict[str, str], Any]:
    """A moto S3 server over HTTP for the prediction log, and the environment to reach it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
           "CTRAIN_S3_ADDRESSING_STYLE": "path", "bucket": "bench"}  # fmt: skip
    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")  # fmt: skip
    client.create_bucket(Bucket="bench")
    return env, server


def _answers(work: Path, bodies: dict[str, Path]) -> dict[str, Path]:
    """What ctrain answers to each body, byte for byte (the ceiling answers the same)."""
    from ctrain.serving.model import ServedModel
    from ctrain.serving.source import DirectorySource

    served = ServedModel.from_loaded(MODEL, DirectorySource(work / "ctrain-model").load())
    answers = {}
    for payload, path in bodies.items():
        request = served.spec.decode(path.read_bytes())
        values = served.predict_batch(request.rows, request.outputs)
        answers[payload] = work / f"answer-{PAYLOAD_ROWS[payload]}.json"
        answers[payload].write_bytes(served.encoder.encode(None, request.outputs, values))
    return answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ctrain serve vs the HTTP ceiling and MLServer")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the servers this many times; report medians")  # fmt: skip
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--mlserver-workers", default="1,0",
                        help="MLServer parallel_workers settings (its default is 1; 0 runs "
                             "inference in the server process)")  # fmt: skip
    parser.add_argument("--servers", default="ceiling,ctrain,mlserver",
                        help="which of ceiling, ctrain, mlserver to run")  # fmt: skip
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction,
                        default=(os.cpu_count() or 1) >= 2)  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    wanted = args.servers.split(",")
    if "mlserver" in wanted and not MLSERVER.exists():
        print(f"{MLSERVER} is missing: run benchmarks/serving/setup-mlserver.sh", file=sys.stderr)
        return 2
    deadline = time.monotonic() + 3 * 3600  # a hard bound on the whole run
    model, x = fit_model()
    rng = np.random.default_rng(1)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ctrain-bench-") as tmp:
        work = Path(tmp)
        bodies, expected = {}, {}
        for payload, rows in PAYLOAD_ROWS.items():
            sample = x[rng.choice(len(x), rows, replace=False)]
            body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [rows, N_FEATURES],
                                "data": sample.ravel().tolist()}],
                    "outputs": [{"name": "predict"}]}  # fmt: skip
            bodies[payload] = work / f"body-{rows}.json"
            bodies[payload].write_text(json.dumps(body))
            expected[payload] = [int(v) for v in model.predict(sample)]
        s3, moto = _s3(work)
        servers: list[Server] = []
        if "ctrain" in wanted or "ceiling" in wanted:
            servers += ctrain_servers(work, model, x, s3)  # writes the model the ceiling uses
        if "ceiling" in wanted:
            servers = ceiling_server(work, _answers(work, bodies)) + servers
        if "ctrain" not in wanted:
            servers = [s for s in servers if not s.name.startswith("ctrain")]
        if "mlserver" in wanted:
            servers += mlserver_servers(
                work, model, [int(w) for w in args.mlserver_workers.split(",")]
            )
        try:
            for round_ in range(1, args.rounds + 1):
                for server in servers:
                    if time.monotonic() > deadline:
                        print("time is up: stopping early", file=sys.stderr)
                        break
                    print(f"round {round_}/{args.rounds}, {server.name}:", flush=True)
                    results += bench(server, bodies, expected, args, work)
        finally:
            moto.stop()
    rows = summarize(results)
    print(
        f"\nconcurrency {args.concurrency}, warm-up {args.warmup}s, {args.duration}s measured, "
        f"{args.rounds} round(s) (medians), {os.cpu_count()} CPUs, pinned: {args.pin}"
    )
    print(table(rows))
    if args.json:
        summary = [{"server": s, "payload": p, **r} for (s, p), r in rows.items()]
        args.json.write_text(json.dumps({"runs": results, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
