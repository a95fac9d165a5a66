"""Serving benchmark: `ctrain serve` against MLServer, same model, same load.

Steps (everything it starts is stopped by pid, and every wait has a deadline):
1. fit one scikit-learn model once: StandardScaler + LogisticRegression on a
   20-feature, 3-class synthetic set;
2. write it for ctrain (model.skops + metadata.json + reference.json, served with
   `ctrain serve --model-dir`) and for MLServer (model.joblib + model-settings.json,
   mlserver-sklearn 1.7.1, from benchmarks/.venv-mlserver: see setup-mlserver.sh);
3. for each server in turn: start it, wait until ready, check that its answers match
   the model's own predictions, then for each payload (1 row, 32 rows) run loadgen.py
   (warm-up, then a fixed duration, same concurrency), then stop it;
4. print a table (server, payload, req/s, p50, p99, errors) and the ctrain/MLServer
   ratios; `--json` also writes the raw results.

By default the server is pinned to CPU 0 and the load generator to CPU 1 (`--no-pin`
to disable), so both servers get the same single core and the load generator its own.
The request body carries no `outputs`: ctrain then computes predict AND predict_proba,
MLServer's sklearn runtime only predict, so ctrain does strictly more work.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CTRAIN_PYTHON = Path(sys.executable)
CTRAIN = CTRAIN_PYTHON.parent / "ctrain"
MLSERVER = ROOT / "benchmarks" / ".venv-mlserver" / "bin" / "mlserver"
MODEL = "bench"
N_FEATURES = 20
PAYLOAD_ROWS = {"1 row": 1, "32 rows": 32}


def fit_model() -> tuple[Any, np.ndarray]:
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = make_classification(
        n_samples=5000, n_features=N_FEATURES, n_informative=10, n_classes=3, random_state=0
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    return model, x


def reference(x: np.ndarray, features: list[str], bins: int = 10) -> dict[str, Any]:
    stats = {}
    for j, name in enumerate(features):
        edges = np.unique(np.quantile(x[:, j], np.linspace(0, 1, bins + 1)))
        counts, _ = np.histogram(x[:, j], bins=edges)
        stats[name] = {"kind": "numeric", "edges": edges.tolist(),
                       "frequencies": (counts / counts.sum()).tolist()}  # fmt: skip
    return {"rows": len(x), "features": stats}


def write_ctrain_dir(path: Path, model: Any, x: np.ndarray) -> None:
    import skops.io

    path.mkdir(parents=True)
    data = skops.io.dumps(model)
    (path / "model.skops").write_bytes(data)
    features = [f"f{i}" for i in range(N_FEATURES)]
    metadata = {
        "model": MODEL, "version": "1", "task": "classification", "features": features,
        "featureTypes": dict.fromkeys(features, "numeric"),
        "modelFile": "model.skops", "modelSha256": hashlib.sha256(data).hexdigest(),
    }  # fmt: skip
    (path / "metadata.json").write_text(json.dumps(metadata))
    (path / "reference.json").write_text(json.dumps(reference(x, features)))


def write_mlserver_dir(path: Path, model: Any, ports: dict[str, int], workers: int) -> None:
    import joblib

    (path / MODEL).mkdir(parents=True)
    joblib.dump(model, path / MODEL / "model.joblib")
    (path / MODEL / "model-settings.json").write_text(json.dumps({
        "name": MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }))  # fmt: skip
    (path / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": ports["http"], "grpc_port": ports["grpc"],
        "metrics_port": ports["metrics"], "parallel_workers": workers,
    }))  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int | None) -> Callable[[], None] | None:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


@contextlib.contextmanager
def started(
    name: str, command: list[str], log: Path, cpu: int | None, cwd: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server in its own process group; stop it (and its children) by pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
            start_new_session=True, preexec_fn=pinned(cpu),
        )  # fmt: skip
    print(f"  started {name} (pid {process.pid}), log {log}", flush=True)
    try:
        yield process
    finally:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)  # the group we created: the server's children
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait)
        print(f"  stopped {name} (exit {process.returncode})", flush=True)


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


def check_answers(url: str, bodies: dict[str, bytes], expected: dict[str, list[int]]) -> None:
    for payload, body in bodies.items():
        outputs = {o["name"]: o for o in post(url, body)["outputs"]}
        got = [int(v) for v in np.ravel(outputs["predict"]["data"])]
        if got != expected[payload]:
            raise RuntimeError(f"{url} answered {got} for {payload}, expected {expected[payload]}")


def load(
    url: str, body: Path, args: argparse.Namespace, cpu: int | None, server_pgid: int
) -> dict[str, Any]:
    command = [
        str(CTRAIN_PYTHON), str(HERE / "loadgen.py"), "--url", url, "--body", str(body),
        "--concurrency", str(args.concurrency), "--warmup", str(args.warmup),
        "--duration", str(args.duration), "--server-pgid", str(server_pgid),
    ]  # fmt: skip
    timeout = args.warmup + args.duration + 60
    done = subprocess.run(
        command, capture_output=True, check=True, timeout=timeout, preexec_fn=pinned(cpu)
    )
    return dict(json.loads(done.stdout))


@dataclass(frozen=True)
class Server:
    """How to start one server under test."""

    name: str
    command: list[str]
    port: int
    cwd: Path | None = None


def bench_server(
    server: Server,
    bodies: dict[str, Path],
    expected: dict[str, list[int]],
    args: argparse.Namespace,
    work: Path,
) -> list[dict[str, Any]]:
    server_cpu, load_cpu = (0, 1) if args.pin else (None, None)
    base = f"http://127.0.0.1:{server.port}"
    url = f"{base}/v2/models/{MODEL}/infer"
    results = []
    log = work / f"{server.name.replace(' ', '_')}.log"
    with started(server.name, server.command, log, server_cpu, server.cwd) as process:
        wait_ready(f"{base}/v2/models/{MODEL}/ready", process, args.ready_timeout)
        check_answers(url, {p: b.read_bytes() for p, b in bodies.items()}, expected)
        for payload, body in bodies.items():
            # start_new_session=True: the server's process group id is its pid.
            result = load(url, body, args, load_cpu, process.pid)
            result.update(server=server.name, payload=payload)
            print(f"  {payload}: {result}", flush=True)
            results.append(result)
    return results


def summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (server, payload): the median of each figure over the rounds."""
    rows = []
    keys = dict.fromkeys((r["server"], r["payload"]) for r in results)
    for server, payload in keys:
        runs = [r for r in results if (r["server"], r["payload"]) == (server, payload)]
        row: dict[str, Any] = {"server": server, "payload": payload, "rounds": len(runs),
                               "errors": sum(r["errors"] for r in runs)}  # fmt: skip
        for key in ("rps", "p50_ms", "p99_ms", "server_cpu_ms_per_request"):
            values = [r[key] for r in runs if r.get(key) is not None]
            row[key] = statistics.median(values) if values else None
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'server':<14} {'payload':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'errors':>7} {'server CPU ms/req':>18}"
    ]
    for r in rows:
        cpu = r["server_cpu_ms_per_request"]
        lines.append(
            f"{r['server']:<14} {r['payload']:<8} {r['rps']:>9.1f} {r['p50_ms']:>8.2f} "
            f"{r['p99_ms']:>8.2f} {r['errors']:>7} {cpu if cpu is not None else '-':>18}"
        )
    lines.append("")
    for payload in PAYLOAD_ROWS:
        ours = next((r for r in rows if r["server"] == "ctrain" and r["payload"] == payload), None)
        theirs = [r for r in rows if r["server"].startswith("mlserver") and r["payload"] == payload]
        if not ours or not theirs:
            continue
        best = max(theirs, key=lambda r: r["rps"])  # compare with MLServer at its best
        ratio = ours["rps"] / best["rps"] if best["rps"] else float("inf")
        line = (
            f"ctrain / {best['server']} ({payload}): throughput x{ratio:.1f}, "
            f"p99 {ours['p99_ms']:.1f} vs {best['p99_ms']:.1f} ms"
        )
        if ours["server_cpu_ms_per_request"] and best["server_cpu_ms_per_request"]:
            cpu_ratio = best["server_cpu_ms_per_request"] / ours["server_cpu_ms_per_request"]
            line += f", CPU per request x{cpu_ratio:.1f} less"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ctrain serve vs MLServer")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternate the servers this many times; report medians")  # fmt: skip
    parser.add_argument("--ready-timeout", type=float, default=120.0)
    parser.add_argument("--mlserver-workers", default="1,0",
                        help="MLServer parallel_workers settings to run (its default is 1; "
                             "0 runs inference in the server process)")  # fmt: skip
    parser.add_argument("--servers", default="ctrain,mlserver")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction,
                        default=(os.cpu_count() or 1) >= 2)  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args(argv)
    wanted = args.servers.split(",")
    if "mlserver" in wanted and not MLSERVER.exists():
        print(f"{MLSERVER} is missing: run benchmarks/serving/setup-mlserver.sh", file=sys.stderr)
        return 2
    deadline = time.monotonic() + 3600  # a hard bound on the whole run

    model, x = fit_model()
    rng = np.random.default_rng(1)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ctrain-bench-") as tmp:
        work = Path(tmp)
        bodies, expected = {}, {}
        for payload, rows in PAYLOAD_ROWS.items():
            sample = x[rng.choice(len(x), rows, replace=False)]
            body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [rows, N_FEATURES],
                                "data": sample.ravel().tolist()}]}  # fmt: skip
            bodies[payload] = work / f"body-{rows}.json"
            bodies[payload].write_text(json.dumps(body))
            expected[payload] = [int(v) for v in model.predict(sample)]

        servers: list[Server] = []
        if "ctrain" in wanted:
            port = free_port()
            write_ctrain_dir(work / "ctrain-model", model, x)
            command = [
                str(CTRAIN), "serve", "--model-dir", str(work / "ctrain-model"),
                "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            ]  # fmt: skip
            servers.append(Server("ctrain", command, port))
        if "mlserver" in wanted:
            for workers in (int(w) for w in args.mlserver_workers.split(",")):
                ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
                folder = work / f"mlserver-w{workers}"
                write_mlserver_dir(folder, model, ports, workers)
                command = [str(MLSERVER), "start", str(folder)]
                servers.append(Server(f"mlserver (w={workers})", command, ports["http"], folder))

        for round_ in range(1, args.rounds + 1):
            for server in servers:
                if time.monotonic() > deadline:
                    print("time is up: stopping early", file=sys.stderr)
                    break
                print(f"round {round_}/{args.rounds}, {server.name}:", flush=True)
                results += bench_server(server, bodies, expected, args, work)

    summary = summarize(results)
    print()
    print(f"concurrency {args.concurrency}, warm-up {args.warmup}s, {args.duration}s measured, "
          f"{args.rounds} round(s) (medians), {os.cpu_count()} CPUs, "
          f"server and load generator pinned to separate cores: {args.pin}")  # fmt: skip
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps({"runs": results, "summary": summary}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
