"""`make demo`: the whole ctrain story in the local sandbox, with progress a person can follow.

1. start the sandbox (control plane, a real node running the image, S3, operator)
2. upload a first, poor data set and apply a ContinuousTraining and a ModelDeployment
3. wait for the first model to be trained, blessed and served; send predictions
4. upload better data: a new run, a better model, promoted and rolled out
5. send shifted traffic: drift is detected; with no new data to learn from, the loop
   does not retrain the same rows (NoNewData)
6. concept drift: the labels change meaning while the inputs look the same; live accuracy
   drops, the loop retrains on the labelled production rows, accuracy recovers
7. print the model versions, write the HTML report (`ctrain models report`) and say
   where it is, and leave the sandbox running to explore
"""

import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
import numpy as np
from kubernetes import client, config
from sklearn.datasets import load_iris

from ctrain.feedback import read_history
from ctrain.registry import Registry
from ctrain.report.history import load_history
from ctrain.report.html import render_report
from ctrain_dev.sandbox import operator as sandbox_operator
from ctrain_dev.sandbox import sandbox

HERE = Path(__file__).parent / "demo"
NAMESPACE = "default"
SERVING = "ctrain.dev/modeldeployment=iris-serving"
CLASSES = np.asarray(["setosa", "versicolor", "virginica"], dtype=object)
# Concept drift: what was called setosa is now called versicolor, and so on.
RENAMED = {"setosa": "versicolor", "versicolor": "virginica", "virginica": "setosa"}
T = TypeVar("T")
started = time.monotonic()


def say(message: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)


def wait(what: str, check: Callable[[], T | None], timeout: float = 300) -> T:
    say(f"waiting: {what}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(2)
    raise SystemExit(f"gave up after {timeout:.0f}s waiting for {what}; see `ctrain dev status`")


def iris_csv(scramble_petals: bool) -> bytes:
    """The iris data as CSV; the first upload has its petal measurements shuffled (poor data)."""
    frame = load_iris(as_frame=True).frame
    frame["species"] = [["setosa", "versicolor", "virginica"][t] for t in frame.pop("target")]
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    if scramble_petals:
        rng = np.random.default_rng(3)
        for column in ("petal_length", "petal_width"):
            frame[column] = rng.permutation(frame[column].to_numpy())
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def main() -> None:
    say("starting the sandbox (the first run builds Kubernetes and the images: minutes)")
    state = sandbox.up(say=say)
    env = state.env()
    s3 = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_DEFAULT_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    registry = Registry(s3, "models", "ctrain")
    api = config.new_client_from_config(str(state.kubeconfig))
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)

    def get(plural: str, name: str) -> dict[str, Any]:
        return custom.get_namespaced_custom_object(
            "ctrain.dev", "v1alpha1", NAMESPACE, plural, name
        )

    def serving_status() -> dict[str, Any]:
        return get("modeldeployments", "iris-serving").get("status") or {}

    say("uploading a first data set to s3://datasets/iris/iris.csv (petal columns scrambled)")
    s3.put_object(Bucket="datasets", Key="iris/iris.csv", Body=iris_csv(scramble_petals=True))
    say("applying examples/demo/modeldeployment.yaml and continuoustraining.yaml")
    for manifest in ("modeldeployment.yaml", "continuoustraining.yaml"):
        sandbox_operator.kubectl(state, "apply", "-n", NAMESPACE, "-f", str(HERE / manifest))

    first = wait(
        "the first model to be trained and served",
        lambda: (s := serving_status()).get("phase") == "Available" and s,
        timeout=420,
    )
    say(f"serving version {first['currentVersion']} at {first['endpoint']}")
    predict(core, "the first model")

    say("uploading better data (the petal measurements restored)")
    s3.put_object(Bucket="datasets", Key="iris/iris.csv", Body=iris_csv(scramble_petals=False))
    old = first["currentVersion"]
    second = wait(
        "the new data to train a better model, promoted and rolled out",
        lambda: (
            (s := serving_status()).get("currentVersion") not in (None, old)
            and s.get("phase") == "Available"
            and s
        ),
        timeout=420,
    )
    decision = (get("continuoustrainings", "iris").get("status") or {}).get("lastDecision")
    say(
        f"serving version {second['currentVersion']} (previous {second.get('previousVersion')})"
        + (f": {decision}" if decision else "")
    )
    new = second["currentVersion"]
    wait(
        f"the pods of version {old} to stop",
        lambda: all(
            p.metadata.labels.get("ctrain.dev/model-version") == new
            for p in core.list_namespaced_pod(NAMESPACE, label_selector=SERVING).items
        ),
    )
    predict(core, "the promoted model")

    say(
        "sending shifted traffic (every measurement +3 cm): the inputs drift from the training data"
    )
    runs_before = len(training_jobs(custom))
    shifted = load_iris().data + 3.0
    for _ in range(25):
        send(core, shifted[np.random.default_rng().choice(150, 32)])
    drift = wait(
        "the drift check to flag the shift",
        lambda: (d := serving_status().get("drift") or {}).get("detected") and d,
        timeout=120,
    )
    say(f"drift score {drift['score']:.2f} over {drift['samples']} rows")
    skipped = wait(
        "the loop to decide on the drift",
        lambda: (
            (t := (get("continuoustrainings", "iris").get("status") or {}).get("lastTriggered"))
            and t.get("reason") == "Drift"
            and t
        ),
        timeout=120,
    )
    if skipped.get("skipped"):
        say(
            f"no retrain: {skipped['skipped']}: the loop has no data it has not trained on, "
            "and the same rows would give the same model; new data or labels will start one"
        )
    else:
        say("drift started a retrain")
        wait(
            "the drift-triggered run to finish",
            lambda: any(
                (tj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
                for tj in training_jobs(custom)[runs_before:]
            ),
            timeout=300,
        )

    concept_drift(state, s3, core, serving_status, training_jobs(custom))

    print_versions(registry, s3, custom)
    report = write_report(registry, state.path / "iris-report.html")
    say(f"report with plots written to {report} (open it in a browser)")
    print("""
The sandbox keeps running. Explore it:
  eval "$(.venv/bin/ctrain dev env)"
  kubectl get ctrain                      # TrainingJobs, ModelDeployments, ContinuousTrainings
  kubectl describe md iris-serving        # the rollout story as Events
  .venv/bin/ctrain models list iris       # the registry
  .venv/bin/ctrain models report iris --deployment default/iris-serving -o iris.html
Stop it with `make demo-down`.""")


def labelled_traffic(core: client.CoreV1Api, s3: Any, batch: str) -> None:
    """Every iris row once, each request with its own id; then the labels, as the business
    learns them later, uploaded where the operator's checks and the trainer find them."""
    data = load_iris()
    ids = [f"{batch}-{i}" for i in range(len(data.data))]
    for request_id, row in zip(ids, data.data, strict=True):
        send(core, row.reshape(1, 4), request_id=request_id)
    time.sleep(6)  # the servers write their prediction logs every 5 s
    labels = [RENAMED[c] for c in CLASSES[data.target]]
    body = "id,species\n" + "".join(f"{i},{y}\n" for i, y in zip(ids, labels, strict=True))
    s3.put_object(Bucket="models", Key=f"ctrain/iris/labels/{batch}.csv", Body=body.encode())
    say(f"uploaded {len(ids)} labels to s3://models/ctrain/iris/labels/{batch}.csv")


def concept_drift(
    state: Any,
    s3: Any,
    core: client.CoreV1Api,
    serving_status: Callable[[], dict[str, Any]],
    runs_before: list[dict[str, Any]],
) -> None:
    """Chapter 6: the labels change meaning; drift cannot see it, live accuracy can."""
    say("concept drift: from now on the business calls a setosa 'versicolor' (and so on)")
    say(
        "the old data no longer holds: the loop is told to train on labelled production "
        "rows alone (dataset.feedback.mode Replace)"
    )
    patch = {"spec": {"template": {"spec": {"dataset": {"feedback": {"mode": "Replace"}}}}}}
    sandbox_operator.kubectl(
        state, "patch", "-n", NAMESPACE, "continuoustraining", "iris", "--type", "merge",
        "-p", json.dumps(patch),
    )  # fmt: skip
    old = serving_status()["currentVersion"]
    labelled_traffic(core, s3, "concept-1")
    degraded = wait(
        "the live accuracy check to judge the labelled predictions",
        lambda: (
            (p := serving_status().get("performance") or {}).get("degraded") is True
            and p.get("version") == old
            and p
        ),
        timeout=240,
    )
    drift = serving_status().get("drift") or {}
    say(
        f"version {old}: live accuracy {degraded['value']:.2f} on {degraded['labelled']} "
        f"labelled predictions, below {degraded['threshold']}: PerformanceDegraded "
        f"(input drift score {drift.get('score', 0):.2f}: the inputs look as before)"
    )
    renewed = wait(
        "a run on the labelled production rows to roll out (new labels are new data; "
        "degraded live accuracy starts one as well)",
        lambda: (
            (s := serving_status()).get("currentVersion") not in (None, old)
            and s.get("phase") == "Available"
            and s
        ),
        timeout=480,
    )
    new = renewed["currentVersion"]
    say(f"serving version {new}, trained on the labelled production rows")
    wait(
        f"the pods of version {old} to stop",
        lambda: all(
            p.metadata.labels.get("ctrain.dev/model-version") == new
            for p in core.list_namespaced_pod(NAMESPACE, label_selector=SERVING).items
        ),
    )
    predict(core, "the retrained model")
    labelled_traffic(core, s3, "concept-2")
    recovered = wait(
        "live accuracy of the retrained version",
        lambda: (
            (p := serving_status().get("performance") or {}).get("version") == new
            and p.get("degraded") is False
            and p
        ),
        timeout=240,
    )
    say(f"version {new}: live accuracy {recovered['value']:.2f}: recovered")


def write_report(registry: Registry, path: Path) -> Path:
    """What `ctrain models report iris --deployment default/iris-serving` writes: every
    version's key metric over time, champion changes, and the deployment's drift."""
    monitoring = {
        f"{NAMESPACE}/iris-serving": registry.monitoring_history("iris", NAMESPACE, "iris-serving")
    }
    path.write_text(render_report(load_history(registry, "iris"), monitoring), encoding="utf-8")
    return path


def serving_ips(core: client.CoreV1Api) -> list[str]:
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector="ctrain.dev/modeldeployment=iris-serving"
    )
    return [
        p.status.pod_ip
        for p in pods.items
        if p.status.pod_ip
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def send(core: client.CoreV1Api, rows: np.ndarray, request_id: str | None = None) -> dict[str, Any]:
    """One inference request to a ready serving pod (there is no kube-proxy in the sandbox)."""
    body: dict[str, Any] = {
        "inputs": [
            {
                "name": "input-0",
                "datatype": "FP64",
                "shape": list(rows.shape),
                "data": rows.ravel().tolist(),
            }
        ]
    }
    if request_id is not None:
        body["id"] = request_id  # the key labels are joined on
    for attempt in range(10):
        ips = serving_ips(core)
        if ips:
            ip = ips[attempt % len(ips)]
            try:
                response = httpx.post(
                    f"http://{ip}:8080/v2/models/iris/infer", json=body, timeout=10
                )
                response.raise_for_status()
                return response.json()
            except httpx.TransportError as error:  # a pod shutting down: ask another one
                say(f"pod {ip} did not answer ({error}); trying another")
        time.sleep(0.5)
    raise SystemExit("no serving pod answered; see `kubectl get pods` and `ctrain dev logs`")


def predict(core: client.CoreV1Api, what: str) -> None:
    rows = load_iris().data[[0, 60, 120]]
    answer = send(core, rows)
    labels = next(o["data"] for o in answer["outputs"] if o["name"] == "predict")
    say(f"{what} predicts {labels} for a setosa, a versicolor and a virginica")


def training_jobs(custom: client.CustomObjectsApi) -> list[dict[str, Any]]:
    items = custom.list_namespaced_custom_object(
        "ctrain.dev",
        "v1alpha1",
        NAMESPACE,
        "trainingjobs",
        label_selector="ctrain.dev/continuoustraining=iris",
    )
    return sorted(items["items"], key=lambda tj: tj["metadata"]["creationTimestamp"])


def print_versions(registry: Registry, s3: Any, custom: client.CustomObjectsApi) -> None:
    triggers = {
        (tj.get("status") or {}).get("modelVersion"): tj["metadata"]["labels"].get(
            "ctrain.dev/trigger-reason", "?"
        )
        for tj in training_jobs(custom)
    }
    champion = registry.champion("iris")
    layout = registry.layout
    print(
        f"\n{'VERSION':<8}{'TRIGGER':<12}{'ACCURACY':>9}{'F1':>8}{'LIVE ACC':>10}"
        f"{'LABELLED':>10}  {'BLESSED':<8}CHAMPION"
    )
    for version in registry.list_versions("iris"):
        meta = registry.metadata("iris", version)
        metrics = meta.metrics
        history = read_history(s3, layout, "iris", version)
        point = history.latest if history is not None else None
        live = "-" if point is None or point.value is None else f"{point.value:.3f}"
        labelled = "-" if point is None else str(point.labelled)
        print(
            f"{version:<8}{triggers.get(version, '?'):<12}{metrics.get('accuracy', 0):>9.3f}"
            f"{metrics.get('f1_macro', 0):>8.3f}{live:>10}{labelled:>10}  "
            f"{str(meta.blessed).lower():<8}{'*' if version == champion else ''}"
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
