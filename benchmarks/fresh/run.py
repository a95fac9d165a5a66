"""Time to a fresh model: from a new data object in S3 to the new champion serving.

In a sandbox of its own (real kube-apiserver, the operator process, moto's S3 over HTTP,
pods as containers of the checkout's image on its real node), a ContinuousTraining polls
its dataset's ETag every 10 s (`onNewData`) and promotes every model that passes its gates
(`baseline: none`: the freshest model wins, so every run rolls out), and a
ModelDeployment follows the champion.
Each run PUTs new bytes to the dataset object and, polling from outside every 0.25 s,
takes the time of each step of the path:

    detect     the ContinuousTraining created a TrainingJob (the ETag poll saw the PUT)
    job        its Job exists
    running    the trainer pod is Running
    trained    the TrainingJob is Succeeded
    promoted   the champion alias in S3 names the new version
    deployed   a Deployment of the ModelDeployment has the version in its pod template
    serving    a serving pod answers a prediction with the new version (its /infer)

p50 and worst over the runs; next to each run the 1-minute load average (2 shared cores).

    .venv/bin/python benchmarks/fresh/run.py [--runs 5] [--keep-sandbox]
"""

import argparse
import io
import itertools
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
from kubernetes import client, config
from sklearn.datasets import load_iris

from ctrain.registry import Registry
from ctrain_dev.sandbox import operator as sandbox_operator
from ctrain_dev.sandbox import sandbox

GROUP, VERSION, NAMESPACE = "ctrain.dev", "v1alpha1", "default"
POLL = 0.25
STEPS = ("detect", "job", "running", "trained", "promoted", "deployed", "serving")
GOAL_P50, GOAL_WORST = 15.0, 25.0


def default_dir() -> Path:
    configured = os.environ.get("CTRAIN_BENCH_SANDBOX_DIR")
    if configured:
        return Path(configured)
    return sandbox.default_dir().parent / "bench-fresh"


def iris_csv(seed: int) -> bytes:
    """Iris with a little seeded noise: new bytes (a new ETag) and still a good model."""
    frame = load_iris(as_frame=True).frame
    frame["species"] = [["setosa", "versicolor", "virginica"][t] for t in frame.pop("target")]
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    rng = np.random.default_rng(seed)
    numbers = frame.columns[:4]
    frame[numbers] = (frame[numbers] + rng.normal(0, 0.05, (len(frame), 4))).round(3)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


class Path_:
    """The objects of one benchmark: a loop, a deployment, the clients to watch them."""

    def __init__(self, state: sandbox.State, tag: str) -> None:
        env = state.env()
        self.s3 = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=env["AWS_DEFAULT_REGION"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        )
        api = config.new_client_from_config(str(state.kubeconfig))
        self.custom, self.core = client.CustomObjectsApi(api), client.CoreV1Api(api)
        self.batch, self.apps = client.BatchV1Api(api), client.AppsV1Api(api)
        self.state = state
        self.model = f"fresh-{tag}"
        self.loop, self.deployment = f"fresh-{tag}", f"fresh-{tag}"
        self.key = f"{self.model}/iris.csv"
        self.registry = Registry(self.s3, "models", "ctrain")
        self.http = httpx.Client(timeout=5)

    def apply(self) -> None:
        loop = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ContinuousTraining",
            "metadata": {"name": self.loop},
            "spec": {
                "template": {
                    "spec": {
                        "model": self.model,
                        "dataset": {"uri": f"s3://datasets/{self.key}", "target": "species"},
                        "estimator": {
                            "type": "sklearn.linear_model.LogisticRegression",
                            "params": {"max_iter": 500},
                        },
                        "evaluation": {
                            "metrics": ["accuracy"],
                            "gates": [{"metric": "accuracy", "min": 0.5}],
                            "baseline": "none",
                        },
                        "promote": True,
                    }
                },
                "triggers": {"onNewData": {"pollIntervalSeconds": 10}},
                "concurrencyPolicy": "Forbid",
            },
        }
        deployment = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": self.deployment},
            "spec": {"model": self.model, "version": "champion", "replicas": 1},
        }
        for manifest in (deployment, loop):
            sandbox_operator.kubectl(self.state, "apply", "-n", NAMESPACE, "-f", "-",
                                     stdin=json.dumps(manifest))  # fmt: skip

    def delete(self) -> None:
        for kind, name in (("ct", self.loop), ("md", self.deployment)):
            sandbox_operator.kubectl(
                self.state, "delete", kind, name, "-n", NAMESPACE, "--ignore-not-found",
                "--wait=false",
            )  # fmt: skip

    def runs(self) -> list[dict[str, Any]]:
        items = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "trainingjobs",
            label_selector=f"ctrain.dev/continuoustraining={self.loop}",
        )["items"]  # fmt: skip
        return sorted(items, key=lambda tj: tj["metadata"]["creationTimestamp"])

    def job_exists(self, run: str) -> bool:
        jobs = self.batch.list_namespaced_job(
            NAMESPACE, label_selector=f"ctrain.dev/trainingjob={run}"
        )
        return bool(jobs.items)

    def pod_running(self, run: str) -> bool:
        pods = self.core.list_namespaced_pod(
            NAMESPACE, label_selector=f"ctrain.dev/trainingjob={run}"
        )
        return any(p.status.phase in ("Running", "Succeeded") for p in pods.items)

    def run_status(self, run: str) -> dict[str, Any]:
        tj = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, "trainingjobs", run
        )
        return tj.get("status") or {}

    def deployed(self, version: str) -> bool:
        deployments = self.apps.list_namespaced_deployment(
            NAMESPACE, label_selector=f"ctrain.dev/modeldeployment={self.deployment}"
        )
        return any(
            (d.spec.template.metadata.labels or {}).get("ctrain.dev/model-version") == version
            for d in deployments.items
        )

    def served_versions(self) -> set[str]:
        """The versions ready serving pods answer predictions with, asked directly."""
        pods = self.core.list_namespaced_pod(
            NAMESPACE, label_selector=f"ctrain.dev/modeldeployment={self.deployment}"
        )
        body = {
            "inputs": [
                {"name": "input-0", "datatype": "FP64", "shape": [1, 4],
                 "data": [5.1, 3.5, 1.4, 0.2]}
            ]
        }  # fmt: skip
        versions = set()
        for pod in pods.items:
            if not pod.status.pod_ip or pod.metadata.deletion_timestamp:
                continue
            url = f"http://{pod.status.pod_ip}:8080/v2/models/{self.model}/infer"
            try:
                response = self.http.post(url, json=body)
            except httpx.TransportError:  # not listening yet, or shutting down
                continue
            if response.status_code == 200:
                versions.add(str(response.json().get("model_version")))
        return versions


def wait(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    sys.exit(f"gave up after {timeout:.0f} s waiting for {what}")


def one_run(path: Path_, seed: int, timeout: float) -> dict[str, float]:
    before = {tj["metadata"]["name"] for tj in path.runs()}
    old = path.registry.champion(path.model)
    load_start = os.getloadavg()[0]
    path.s3.put_object(Bucket="datasets", Key=path.key, Body=iris_csv(seed))
    put = time.monotonic()
    marks: dict[str, float] = {}
    run = version = ""

    def reached(step: str) -> bool:
        nonlocal run, version
        if step == "detect":
            new = [
                tj["metadata"]["name"] for tj in path.runs() if tj["metadata"]["name"] not in before
            ]
            run = new[0] if new else ""
            return bool(run)
        if step == "job":
            return path.job_exists(run)
        if step == "running":
            return path.pod_running(run)
        if step == "trained":
            status = path.run_status(run)
            if status.get("phase") == "Failed":
                sys.exit(f"run {run} failed: {status.get('message')}")
            version = str(status.get("modelVersion") or "")
            return status.get("phase") == "Succeeded"
        if step == "promoted":
            champion = path.registry.champion(path.model)
            if champion == old:
                return False
            if champion != version:
                sys.exit(f"the champion moved to {champion}, not to the run's {version}")
            return True
        if step == "deployed":
            return path.deployed(version)
        return version in path.served_versions()

    pending = list(STEPS)
    while pending:
        if time.monotonic() - put > timeout:
            sys.exit(f"run {seed}: no {pending[0]} after {timeout:.0f} s (run {run!r})")
        while pending and reached(pending[0]):
            marks[pending.pop(0)] = time.monotonic() - put
        if pending:
            time.sleep(POLL)
    marks["load_start"], marks["load_end"] = load_start, os.getloadavg()[0]
    return marks


def report(results: list[dict[str, float]]) -> None:
    print(f"\nTime to a fresh model (s after the PUT), {len(results)} runs, onNewData poll 10 s")
    print(f"{'run':<6}" + "".join(f"{step:>10}" for step in STEPS) + f"{'load':>12}")
    for index, marks in enumerate(results, 1):
        print(
            f"{index:<6}" + "".join(f"{marks[step]:>10.1f}" for step in STEPS)
            + f"{marks['load_start']:>6.1f}->{marks['load_end']:.1f}"
        )  # fmt: skip
    columns = {step: [marks[step] for marks in results] for step in STEPS}
    print(f"{'p50':<6}" + "".join(f"{statistics.median(v):>10.1f}" for v in columns.values()))
    print(f"{'worst':<6}" + "".join(f"{max(v):>10.1f}" for v in columns.values()))
    steps = ["put", *STEPS]
    gaps = {
        f"{a}->{b}": statistics.median(m[b] - m.get(a, 0.0) for m in results)
        for a, b in itertools.pairwise(steps)
    }
    print("p50 of each step: " + ", ".join(f"{k} {v:.1f} s" for k, v in gaps.items()))
    p50, worst = statistics.median(columns["serving"]), max(columns["serving"])
    met = "met" if p50 <= GOAL_P50 else f"missed by {p50 - GOAL_P50:.1f} s"
    met_worst = "met" if worst <= GOAL_WORST else f"missed by {worst - GOAL_WORST:.1f} s"
    print(
        f"PUT -> serving: p50 {p50:.1f} s (goal <= {GOAL_P50:.0f}: {met}), "
        f"worst {worst:.1f} s (goal <= {GOAL_WORST:.0f}: {met_worst})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=180, help="seconds per run at most")
    parser.add_argument("--dir", type=Path, default=default_dir(), help="the sandbox directory")
    parser.add_argument("--keep-sandbox", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started_here = sandbox.running(args.dir) is None
    state = sandbox.up(args.dir)
    path = Path_(state, uuid.uuid4().hex[:6])
    try:
        path.s3.put_object(Bucket="datasets", Key=path.key, Body=iris_csv(0))
        path.apply()
        print(f"first model of {path.model}: trained, promoted, served", flush=True)
        wait("the first model served", lambda: path.served_versions(), timeout=300)
        results = []
        for seed in range(1, args.runs + 1):
            marks = one_run(path, seed, args.timeout)
            results.append(marks)
            print(f"run {seed}: " + ", ".join(f"{s} {marks[s]:.1f}" for s in STEPS), flush=True)
            # the old pod gone before the next PUT: each run starts from one serving pod
            wait("the rollout to settle", lambda: len(path.served_versions()) == 1, timeout=120)
        report(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        path.delete()
        if started_here and not args.keep_sandbox:
            sandbox.down(args.dir)


if __name__ == "__main__":
    main()
