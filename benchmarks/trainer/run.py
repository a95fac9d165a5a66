"""Trainer overhead: `ctrain train` against a plain scikit-learn fit + skops save.

Both run as their own processes, read the same 1,000,000-row table from the same S3 API
(moto's server, over HTTP), fit the same pipeline on as many rows and upload the model:
`ctrain train` into the registry (with a champion to compare with, as in continuous
training), `plain.py` with a plain `put_object`. Runs alternate so that the shared
machine's load falls on both alike; the table prints the median wall time of each, the
ratio, and the 1-minute load average at the start and end of each pair.

A last run of `ctrain train` under cProfile attributes its time to the phases (read,
parse, validate, split, fit, evaluate, compare, reference, save, upload) by the
cumulative time of the functions that implement them.

    .venv/bin/python benchmarks/trainer/run.py [--rows 1000000] [--repeats 3]
"""

import argparse
import io
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import numpy as np
import pandas as pd

from ctrain_dev import host

HERE = Path(__file__).parent
DATA_BUCKET, MODEL_BUCKET = "datasets", "models"
MODEL = "bench-trainer"
TARGET = "label"
CATEGORICAL = ("region", "plan")
# (phase, the functions whose cumulative time is the phase's); `read` and `parse` are
# inside `load_dataset`, `save` (skops) and `upload` inside `publish`.
PHASES = (
    ("import + start", None),
    ("read", "data.py:_read_object"),
    ("parse", "data.py:_parse"),
    ("fingerprint", "data.py:fingerprint"),
    ("validate", "validation.py:validate"),
    ("split", "split.py:split_holdout"),
    ("to matrix (all calls)", "features.py:to_matrix"),  # also inside compare
    ("fit", "run.py:_fit"),
    ("evaluate", "evaluate.py:compute_metrics"),
    ("compare", "run.py:_compare"),
    ("reference", "reference.py:compute_reference"),
    ("save (skops)", "_persist.py:dumps"),
    ("upload + promote", None),
)


def table(rows: int, seed: int = 7) -> pd.DataFrame:
    """A synthetic classification table: 8 numbers, 2 categories, a binary label."""
    rng = np.random.default_rng(seed)
    numbers = rng.normal(size=(rows, 8))
    frame = pd.DataFrame(numbers, columns=[f"x{i}" for i in range(8)])
    frame.loc[rng.random(rows) < 0.01, "x3"] = np.nan  # some gaps for the imputer
    frame["region"] = rng.choice(["north", "south", "east", "west", "centre"], rows)
    frame["plan"] = rng.choice([f"p{i}" for i in range(12)], rows)
    logit = numbers[:, 0] - 0.5 * numbers[:, 1] + (frame["region"] == "east") * 0.8
    frame[TARGET] = np.where(logit + rng.logistic(size=rows) > 0, "yes", "no")
    return frame


def spec(uri: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "dataset": {
            "uri": uri,
            "target": TARGET,
            "expectations": {
                "minRows": 1000,
                "columns": {
                    "x0": {"type": "float", "min": -100, "max": 100, "nullable": False},
                    "region": {
                        "type": "category",
                        "allowed": ["north", "south", "east", "west", "centre"],
                    },
                    TARGET: {"type": "category", "allowed": ["yes", "no"]},
                },
            },
        },
        "estimator": {"type": "sklearn.linear_model.LogisticRegression", "params": {}},
        "evaluation": {"metrics": ["accuracy", "roc_auc_ovr"], "baseline": "champion"},
        "promote": True,
    }


def load() -> float:
    return os.getloadavg()[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout); fails loudly on an exit != 0."""
    before = os.times()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = os.times()
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    if done.returncode != 0:
        sys.exit(f"{argv[:4]} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return wall, cpu, done.stdout


def profile_phases(prof: Path, wall: float) -> list[tuple[str, float]]:
    stats = pstats.Stats(str(prof))
    cumulative: dict[str, float] = {}
    for (filename, _, function), row in stats.stats.items():  # type: ignore[attr-defined]
        name = f"{Path(filename).name}:{function}"
        cumulative[name] = max(cumulative.get(name, 0.0), row[3])
    phases = [(label, cumulative.get(key, 0.0)) for label, key in PHASES if key]
    train_total = cumulative.get("run.py:run", 0.0)
    publish = cumulative.get("core.py:publish", 0.0)
    promote = cumulative.get("register.py:promote", 0.0)
    save = dict(phases)["save (skops)"]
    rows = [("import + start", wall - train_total)]
    rows += [(label, seconds) for label, seconds in phases if label != "save (skops)"]
    rows += [("save (skops)", save), ("upload + promote", publish + promote)]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ctrain-bench-trainer-"))
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = host.spawn(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        work / "moto.log",
    )
    try:
        run_all(args, endpoint, work)
    finally:
        host.stop(moto)


def run_all(args: argparse.Namespace, endpoint: str, work: Path) -> None:
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CTRAIN_BUCKET": MODEL_BUCKET,
    }
    for _ in range(100):
        try:
            s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id="bench",
                aws_secret_access_key="bench-secret",
                region_name="us-east-1",
            )
            s3.create_bucket(Bucket=DATA_BUCKET)
            break
        except botocore.exceptions.EndpointConnectionError:  # moto still starting
            time.sleep(0.2)
    else:
        sys.exit(f"moto did not start; see {work / 'moto.log'}")
    s3.create_bucket(Bucket=MODEL_BUCKET)
    frame = table(args.rows)
    buffer = io.BytesIO()
    if args.format == "parquet":
        frame.to_parquet(buffer, index=False)
    else:
        frame.to_csv(buffer, index=False)
    key = f"bench/table.{args.format}"
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=buffer.getvalue())
    uri = f"s3://{DATA_BUCKET}/{key}"
    print(
        f"table: {args.rows:,} rows x {frame.shape[1]} columns, {args.format} "
        f"{buffer.getbuffer().nbytes / 1e6:.1f} MB at {uri} (moto over HTTP)",
        flush=True,
    )
    spec_file = work / "spec.json"
    spec_file.write_text(json.dumps(spec(uri)))
    ctrain = [sys.executable, "-m", "ctrain.cli", "train", "--spec-file", str(spec_file)]
    plain = [
        sys.executable,
        str(HERE / "plain.py"),
        f"--uri={uri}",
        f"--target={TARGET}",
        f"--categorical={','.join(CATEGORICAL)}",
        "--test-size=0.1",
        f"--out=s3://{MODEL_BUCKET}/plain/model.skops",
    ]
    print("a first ctrain run makes the champion the later runs are compared with", flush=True)
    timed(ctrain, env)

    pairs: list[dict[str, float]] = []
    for index in range(args.repeats):
        load_before = load()
        ctrain_wall, ctrain_cpu, _ = timed(ctrain, env)
        plain_wall, plain_cpu, plain_out = timed(plain, env)
        pair = {
            "ctrain_s": ctrain_wall,
            "ctrain_cpu_s": ctrain_cpu,
            "plain_s": plain_wall,
            "plain_cpu_s": plain_cpu,
            "load_start": load_before,
            "load_end": load(),
        }
        pairs.append(pair)
        print(
            f"run {index + 1}: ctrain {ctrain_wall:.1f} s (cpu {ctrain_cpu:.1f}), plain "
            f"{plain_wall:.1f} s (cpu {plain_cpu:.1f}), load {load_before:.1f}->{load():.1f}; "
            f"plain phases {json.loads(plain_out)['phases']}",
            flush=True,
        )

    prof = work / "train.prof"
    load_before = load()
    wall, _, _ = timed([sys.executable, "-m", "cProfile", "-o", str(prof), *ctrain[1:]], env)
    phases = profile_phases(prof, wall)
    report(args, pairs, phases, wall, (load_before, load()))
    if args.json:
        args.json.write_text(json.dumps({"pairs": pairs, "phases": dict(phases)}, indent=2))


def report(
    args: argparse.Namespace,
    pairs: list[dict[str, float]],
    phases: list[tuple[str, float]],
    profiled_wall: float,
    profiled_load: tuple[float, float],
) -> None:
    ctrain = statistics.median(p["ctrain_s"] for p in pairs)
    plain = statistics.median(p["plain_s"] for p in pairs)
    ctrain_cpu = statistics.median(p["ctrain_cpu_s"] for p in pairs)
    plain_cpu = statistics.median(p["plain_cpu_s"] for p in pairs)
    loads = [p["load_start"] for p in pairs] + [p["load_end"] for p in pairs]
    print(f"\nTrainer overhead, {args.rows:,} rows ({args.format}), median of {len(pairs)} pairs")
    print(f"{'':<28}{'wall s':>9}{'cpu s':>9}")
    print(f"{'plain fit + skops save':<28}{plain:>9.1f}{plain_cpu:>9.1f}")
    print(f"{'ctrain train':<28}{ctrain:>9.1f}{ctrain_cpu:>9.1f}")
    overhead = ctrain / plain - 1
    verdict = "met" if overhead <= 0.10 else f"missed by {100 * (overhead - 0.10):.0f} points"
    print(
        f"{'ratio ctrain / plain':<28}{ctrain / plain:>9.2f}{ctrain_cpu / plain_cpu:>9.2f}"
        f"   overhead {100 * overhead:+.0f}% (goal <= 10%: {verdict})"
    )
    print(f"1-minute load average during the pairs: {min(loads):.1f}-{max(loads):.1f} (2 cores)")
    print(
        f"\nWhere ctrain train's time goes (one run under cProfile, {profiled_wall:.1f} s wall, "
        f"load {profiled_load[0]:.1f}->{profiled_load[1]:.1f}; cProfile adds a little to each)"
    )
    for label, seconds in phases:
        print(f"  {label:<20}{seconds:>8.2f} s {100 * seconds / profiled_wall:>5.1f}%")


if __name__ == "__main__":
    main()
