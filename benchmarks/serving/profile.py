"""Where `ctrain serve` spends its CPU under the benchmark's load: py-spy, summarised.

Starts `ctrain serve` on the benchmark's model (pinned to CPU 0), drives it with
`loadgen.py` (CPU 1, concurrency 32, one-row requests), samples it with py-spy for
`--seconds`, and prints the functions with the most samples, by self time and
including callees. Idle threads are left out. This is how the serving path was tuned:
profile, change the biggest cost, measure again with run.py.

    ../../.venv/bin/pip install py-spy==0.4.3   # once (the `bench` extra pins it)
    ../../.venv/bin/python profile.py --seconds 15
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import PAYLOAD_ROWS, load, started, wait_ready
from servers import MODEL, N_FEATURES, Server, ctrain_servers, fit_model

_FRAME = re.compile(r"(.*) \((.*?)(?::\d+)?\)$")


def summarize(raw: Path, top: int) -> str:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        names = []
        for frame in stack.split(";"):
            match = _FRAME.match(frame)
            names.append(f"{match[1]} ({match[2].rsplit('/', 1)[-1]})" if match else frame)
        if names[-1].startswith("_worker (thread.py)"):
            continue  # an idle executor thread waiting for work
        total += int(count)
        own[names[-1]] += int(count)
        for name in set(names):
            inclusive[name] += int(count)
    lines = [f"{total} samples; self time:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines.append("including callees:")
    shared = [(name, n) for name, n in inclusive.most_common() if n < total]  # not the roots
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in shared[:top]]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--payload", choices=list(PAYLOAD_ROWS), default="1 row")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if py_spy is None:
        print("py-spy is missing: pip install py-spy==0.4.3", file=sys.stderr)
        return 2
    model, x = fit_model()
    rows = PAYLOAD_ROWS[args.payload]
    with tempfile.TemporaryDirectory(prefix="ctrain-profile-") as tmp:
        work = Path(tmp)
        server: Server = ctrain_servers(work, model, x, {"bucket": "-"})[0]  # no log
        body = work / "body.json"
        body.write_text(json.dumps({"inputs": [{"name": "input-0", "datatype": "FP64",
                                                "shape": [rows, N_FEATURES],
                                                "data": x[:rows].ravel().tolist()}],
                                    "outputs": [{"name": "predict"}]}))  # fmt: skip
        load_args = argparse.Namespace(concurrency=32, warmup=2.0, duration=args.seconds + 4)
        with started(server, work / "serve.log", {0}) as process:
            base = f"http://127.0.0.1:{server.port}"
            wait_ready(f"{base}/v2/models/{MODEL}/ready", process, 120)
            with subprocess.Popen(
                [py_spy, "record", "-p", str(process.pid), "-d", str(args.seconds), "-r", "200",
                 "--format", "raw", "-o", str(work / "raw.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ) as spy:  # fmt: skip
                time.sleep(2)  # sample the measured part, not the warm-up
                result = load(f"{base}/v2/models/{MODEL}/infer", body, load_args, {1}, process.pid)
                spy.wait(timeout=args.seconds + 30)
        print(f"load: {result['rps']:.0f} req/s, {result['server_cpu_ms_per_request']} ms CPU "
              f"per request, p99 {result['p99_ms']:.1f} ms")  # fmt: skip
        print(summarize(work / "raw.txt", args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
