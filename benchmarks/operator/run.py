"""The operator benchmark: one command, its own sandbox, a table of figures against goals.

    .venv/bin/python benchmarks/operator/run.py [--operator-path OTHER/operator] [--json F]

It starts (or reuses) a sandbox in `$CTRAIN_BENCH_SANDBOX_DIR` (default
`~/.local/state/ctrain/bench-operator`), starts `ctrain operator` as a host process, runs
the scenarios of `scenarios.py` and prints one table: each figure, the goal of issue 15
and the machine's 1-minute load average while it was taken (the machine is shared: a
figure taken under a high load is worth repeating). The sandbox is stopped at the end
unless `--keep-sandbox`.
"""

import argparse
import dataclasses
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from cluster import Cluster, OperatorProcess, default_sandbox_dir
from meter import Meter
from scenarios import Row, Settings, burst, continuous_idle, serving

from ctrain_dev.sandbox import operator as sandbox_operator
from ctrain_dev.sandbox import sandbox as sandbox_module

SCENARIOS = {"serving": serving, "continuous": continuous_idle, "burst": burst}
ANCHORS = [
    Row("anchor: Kubernetes API SLO, mutating calls", "p99 <= 1 s", "", ""),
    Row("anchor: Argo Workflows controller, default settings", "270 workflows/min", "", ""),
]


def machine() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        int(line.split()[1]) // 1024 // 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    return f"{os.cpu_count()} cores ({model}), {memory} GiB, Python {platform.python_version()}"


def table(rows: list[Row]) -> str:
    header = Row("figure", "measured", "goal", "load")
    fields = [f.name for f in dataclasses.fields(Row)]
    widths = [max(len(getattr(r, f)) for r in [header, *rows]) for f in fields]
    lines = []
    for index, row in enumerate([header, *rows]):
        cells = [getattr(row, f).ljust(w) for f, w in zip(fields, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operator-path", type=Path, help="run the operator from this operator/")
    parser.add_argument("--only", choices=sorted(SCENARIOS), action="append")
    parser.add_argument("--idle-seconds", type=float, default=Settings.idle_seconds)
    parser.add_argument("--settle-seconds", type=float, default=Settings.settle_seconds)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--keep-sandbox", action="store_true")
    args = parser.parse_args()
    # `kill` stops the run like Ctrl-C: the operator and the sandbox are stopped by pid.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    settings = Settings(idle_seconds=args.idle_seconds, settle_seconds=args.settle_seconds)

    directory = default_sandbox_dir()
    state = sandbox_module.running(directory)
    started_here = state is None
    if state is None:
        state = sandbox_module.up(directory, with_operator=False)
    sandbox_operator.apply_crds(state)
    cluster = Cluster(state)
    log = directory / "logs" / f"operator-bench-{int(time.time())}.log"
    operator = OperatorProcess(state, log, args.operator_path)
    print(f"operator pid {operator.pid}, log {log}", flush=True)
    rows: list[Row] = []
    try:
        time.sleep(5)  # imports and the first listings
        meter = Meter(operator.pid)
        for name in args.only or list(SCENARIOS):
            print(f"scenario {name} ...", flush=True)
            rows.extend(SCENARIOS[name](cluster, meter, settings))
            if not operator.alive():
                raise RuntimeError(f"the operator exited; see {log}")
        rows.append(
            Row("operator peak RSS, whole run", f"{meter.peak_rss_mib():.0f} MiB", "<= 250 MiB", "")
        )
    finally:
        operator.stop()
        if started_here and not args.keep_sandbox:
            sandbox_module.down(directory)
    source = args.operator_path or Path(__file__).resolve().parents[2] / "operator"
    print(f"\noperator from {source}; machine: {machine()}\n")
    print(table(rows + ANCHORS))
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
