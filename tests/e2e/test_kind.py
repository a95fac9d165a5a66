"""ctrain's user stories on a real kind cluster, with the real image and the chart.

1. A TrainingJob trains on a (deliberately poor) CSV in S3 and registers version 1,
   which becomes the champion.
2. A ModelDeployment serves it through real Services: tritonclient from this machine
   through a NodePort (kube-proxy; kind-config.yaml publishes the port), and a pod asking
   the deployment's own Service by its DNS name.
3. A ContinuousTraining notices better data, trains version 2, which beats the champion
   on the same holdout and is promoted; the deployment rolls it out by itself while a
   steady stream of requests runs, and not one request fails.
4. A canary of a new version is promoted under good traffic; a canary that gets only
   malformed requests (400s, no evidence either way) is never promoted and is rolled back.
5. Every pod of ctrain, its S3 API and the models was admitted under Pod Security
   `restricted` and runs as the non-root user.

Along the way the Argo CD health checks judge the live objects, and the managed fields
show that the operator wrote only status. Skipped, saying why, only where no container
engine can run. The model name is unique per session, so a reused cluster's registry
does not leak versions into the assertions.
"""

import importlib.util
import io
import json
import threading
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
MODEL = f"iris-{uuid.uuid4().hex[:6]}"
DATA_KEY = f"{MODEL}.csv"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
VERSION_LABEL = "ctrain.dev/model-version"  # on every serving pod


def _load(name: str, path: Path) -> ModuleType:
    """Import a helper by path (conftest.py is not importable by a unique module name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kindenv = _load("ctrain_e2e_kind", Path(__file__).with_name("conftest.py"))


def iris_csv(scramble_petals: bool) -> bytes:
    """The iris data as CSV; the poor version has its petal measurements shuffled."""
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


def _resource(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, **metadata},
        "spec": spec,
    }


TRAINING = {
    "model": MODEL,
    "dataset": {"uri": f"s3://datasets/{DATA_KEY}", "target": "species"},
    "estimator": {"type": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
    "evaluation": {"testSize": 0.3, "seed": 7, "metrics": ["accuracy"]},
    "promote": True,
}


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def assert_operator_writes_only_status(body: dict[str, Any]) -> None:
    """Only the user's apply (kubectl) owns spec, labels and annotations: no GitOps drift."""
    for entry in body["metadata"].get("managedFields", []):
        if entry["manager"] == "kubectl" or entry.get("subresource") == "status":
            continue
        fields = entry.get("fieldsV1", {})
        assert set(fields) <= {"f:metadata"}, entry
        assert set(fields.get("f:metadata", {})) <= {"f:finalizers"}, entry


def argocd_health(body: dict[str, Any]) -> dict[str, str]:
    """The verdict of deploy/argocd's health.lua on a live object (the unit tests' harness)."""
    harness = _load("argocd_health_harness", ROOT / "tests" / "unit" / "test_argocd_health.py")
    script = ROOT / "deploy" / "argocd" / "ctrain.dev" / body["kind"] / "health.lua"
    verdict: dict[str, str] = harness.LuaHealth().evaluate(script.read_text(), body["kind"], body)
    return verdict


def infer_body(rows: list[list[float]]) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64",
                        "data": rows}]}  # fmt: skip


class Load:
    """A steady stream of inference requests, one new TCP connection each, as a client
    behind a load balancer would open them; every answer or failure is kept."""

    def __init__(self, url: str, rows: list[list[float]] | None = None, bad: bool = False):
        self.url, self.bad = f"{url}/v2/models/{MODEL}/infer", bad
        self.body = infer_body(rows or ROWS)
        if bad:  # a shape that does not match the data: the server answers 400
            self.body["inputs"][0]["shape"] = [3, 4]
        self.results: list[tuple[int | str, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=10, limits=limits) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(self.url, json=self.body)
                    version = answer.json().get("model_version") if answer.is_success else None
                    self.results.append((answer.status_code, version))
                except httpx.HTTPError as error:
                    self.results.append((f"{type(error).__name__}: {error}", None))
                time.sleep(0.05)

    def __enter__(self) -> "Load":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def failures(self) -> list[tuple[int | str, str | None]]:
        return [result for result in self.results if result[0] != 200]

    def versions(self) -> set[str]:
        return {version for code, version in self.results if code == 200 and version}


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(kind_cluster: Any, s3: Any) -> Any:
    """Upload data sets to the registry's S3 API: `data(poor=True|False)`."""

    def upload(poor: bool) -> None:
        with kindenv.s3_here(kind_cluster, s3) as client:
            client.put_object(Bucket="datasets", Key=DATA_KEY, Body=iris_csv(poor))

    return upload


@pytest.fixture(scope="module")
def first_run(kind_cluster: Any, namespace: str, data: Any) -> dict[str, Any]:
    data(poor=True)
    kind_cluster.apply(_resource("TrainingJob", f"{MODEL}-1", TRAINING), namespace=namespace)
    return kind_cluster.wait_phase(  # type: ignore[no-any-return]
        "trainingjob", f"{MODEL}-1", namespace, {"Succeeded", "Failed"}
    )


@pytest.fixture(scope="module")
def serving(kind_cluster: Any, namespace: str, first_run: dict[str, Any]) -> dict[str, Any]:
    spec = {"model": MODEL, "version": "champion", "replicas": 2}
    kind_cluster.apply(_resource("ModelDeployment", "serving", spec), namespace=namespace)
    return kind_cluster.wait_phase(  # type: ignore[no-any-return]
        "modeldeployment", "serving", namespace, {"Available", "Degraded"}
    )


@pytest.fixture(scope="module")
def node_port(kind_cluster: Any, namespace: str) -> Any:
    """Point the NodePort Service (published on this machine) at a deployment's pods."""

    def point(deployment: str) -> str:
        body = kind_cluster.get("modeldeployment", deployment, namespace)
        selector = kindenv.selector_of(body["status"])
        service = kindenv.node_port_service("e2e-nodeport", selector)
        kind_cluster.apply(service, namespace=namespace)
        url = kind_cluster.node_port_url()

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        kind_cluster.wait_for(answers, 120, f"{deployment} on the NodePort")
        return str(url)

    return point


# --- the stories -----------------------------------------------------------------------


def test_1_training_registers_and_promotes_the_first_version(first_run: dict[str, Any]) -> None:
    status = first_run["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["modelVersion"] == "1"
    assert status["blessed"] is True and status["promoted"] is True
    assert status["artifactUri"].startswith("s3://models/")
    assert condition(first_run, "Ready")["status"] == "True"
    assert_operator_writes_only_status(first_run)
    assert argocd_health(first_run)["status"] == "Healthy"


def test_2_serving_answers_through_real_services(
    kind_cluster: Any, namespace: str, serving: dict[str, Any], node_port: Any
) -> None:
    import tritonclient.http as triton

    status = serving["status"]
    assert status["phase"] == "Available", status.get("message")
    assert status["currentVersion"] == "1"
    assert status.get("readyReplicas") == 2
    assert argocd_health(serving)["status"] == "Healthy"

    # From this machine: NodePort on the control plane -> kube-proxy -> a pod on the worker.
    url = node_port("serving")
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    assert client.is_model_ready(MODEL)
    rows = triton.InferInput("input-0", [2, 4], "FP64")
    rows.set_data_from_numpy(np.array(ROWS))
    answer = client.infer(MODEL, [rows])
    assert answer.get_response()["model_version"] == "1"
    assert len(answer.as_numpy("predict")) == 2

    # From a pod: the operator's own Service, by its cluster DNS name.
    endpoint = status["endpoint"]
    assert endpoint.startswith(f"http://serving.{namespace}.svc")
    script = (
        "import json, httpx; "
        f"r = httpx.post('{endpoint}/infer', json={infer_body(ROWS)!r}); "
        "print(r.status_code, json.dumps(r.json()))"
    )
    out = _run_pod(kind_cluster, namespace, ["python", "-c", script])
    code, _, body = out.strip().partition(" ")
    assert code == "200", out
    assert json.loads(body)["model_version"] == "1"


def _run_pod(kind_cluster: Any, namespace: str, command: list[str]) -> str:
    """Run `command` in a pod to its end and return its output.

    Not `kubectl run -i --rm`: its attach may come after a quick container has exited,
    and the output is then lost. The pod's log is kept until the pod is deleted.
    """
    name = f"client-{uuid.uuid4().hex[:6]}"
    kind_cluster.kubectl(
        "run", name, "-n", namespace, "--restart=Never", f"--image={kindenv.IMAGE}",
        "--overrides", json.dumps(_restricted_pod(command)),
    )  # fmt: skip
    try:
        finished = kind_cluster.wait_phase("pod", name, namespace, {"Succeeded", "Failed"}, 120)
        out: str = kind_cluster.kubectl("logs", "-n", namespace, name)
        assert finished["status"]["phase"] == "Succeeded", out
        return out
    finally:
        kind_cluster.kubectl("delete", "pod", "-n", namespace, name, "--wait=false", check=False)


def _restricted_pod(command: list[str]) -> dict[str, Any]:
    """`kubectl run --overrides` for a client pod that Pod Security `restricted` admits."""
    return {
        "spec": {
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "client", "image": kindenv.IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": command,
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"drop": ["ALL"]},
                                    "readOnlyRootFilesystem": True},
            }],
        }
    }  # fmt: skip


def test_3_the_loop_promotes_better_data_and_the_rollout_loses_no_request(
    kind_cluster: Any, namespace: str, serving: dict[str, Any], node_port: Any, data: Any
) -> None:
    before = kind_cluster.get("modeldeployment", "serving", namespace)
    url = node_port("serving")
    with Load(url) as load:
        data(poor=False)
        loop = {
            "template": {"spec": TRAINING},
            "triggers": {"onNewData": {"pollIntervalSeconds": 10}},
        }
        kind_cluster.apply(_resource("ContinuousTraining", "loop", loop), namespace=namespace)

        def promoted() -> dict[str, Any] | None:
            body: dict[str, Any] = kind_cluster.get("continuoustraining", "loop", namespace)
            status = body.get("status") or {}
            champion = (status.get("champion") or {}).get("version")
            finished = status.get("lastRun") and not status.get("activeRun")
            return body if champion == "2" and finished else None

        loop_body = kind_cluster.wait_for(promoted, 900, "the loop to promote version 2")

        def rolled_out() -> dict[str, Any] | None:
            body: dict[str, Any] = kind_cluster.get("modeldeployment", "serving", namespace)
            status = body.get("status") or {}
            done = status.get("phase") == "Available" and status.get("currentVersion") == "2"
            pods = kind_cluster.items("pods", namespace, status.get("selector") or "none=none")
            old = [p for p in pods if p["metadata"]["labels"].get(VERSION_LABEL) != "2"]
            return body if done and not old else None

        after = kind_cluster.wait_for(rolled_out, 600, "version 2 to replace every pod")
        time.sleep(5)  # a few more requests on the new pods only
    assert load.failures() == [], load.failures()[:5]
    assert len(load.results) > 100
    assert load.versions() == {"1", "2"}

    run = kind_cluster.get("trainingjob", loop_body["status"]["lastRun"], namespace)
    assert run["status"]["modelVersion"] == "2"
    assert run["status"]["baseline"]["version"] == "1"
    assert run["status"]["promoted"] is True, run["status"].get("decision")
    assert run["status"]["metrics"]["accuracy"] > first_accuracy(kind_cluster, namespace)
    # The promotion reached the deployment through status only: no spec change.
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert_operator_writes_only_status(after)
    assert_operator_writes_only_status(loop_body)
    assert argocd_health(after)["status"] == "Healthy"


def first_accuracy(kind_cluster: Any, namespace: str) -> float:
    body = kind_cluster.get("trainingjob", f"{MODEL}-1", namespace)
    return float(body["status"]["metrics"]["accuracy"])


def test_4_a_canary_is_promoted_and_one_without_valid_traffic_rolled_back(
    kind_cluster: Any, namespace: str, node_port: Any
) -> None:
    canary = {"weight": 50, "promoteAfterSeconds": 20, "maxErrorRate": 0.05, "minRequests": 20}
    spec = {"model": MODEL, "version": "1", "replicas": 2, "progressDeadlineSeconds": 60,
            "strategy": {"type": "Canary", "canary": canary}}  # fmt: skip
    kind_cluster.apply(_resource("ModelDeployment", "canary", spec), namespace=namespace)
    kind_cluster.wait_phase("modeldeployment", "canary", namespace, {"Available"})
    url = node_port("canary")

    # Version 2 as a canary, with good traffic: promoted after promoteAfterSeconds.
    kind_cluster.apply(_resource("ModelDeployment", "canary", {**spec, "version": "2"}),
                       namespace=namespace)  # fmt: skip
    with Load(url) as good:
        promoted = kind_cluster.wait_for(
            lambda: _status_if(kind_cluster, namespace, currentVersion="2", phase="Available"),
            600,
            "the canary of version 2 to be promoted",
        )
    assert good.failures() == [], good.failures()[:5]
    assert "canaryVersion" not in promoted["status"]

    # Version 1 as a canary with malformed requests only: a client's 400s are no evidence
    # either way, so it never gets a verdict and is rolled back after promoteAfterSeconds +
    # progressDeadlineSeconds; version 2 keeps serving.
    kind_cluster.apply(_resource("ModelDeployment", "canary", {**spec, "version": "1"}),
                       namespace=namespace)  # fmt: skip
    kind_cluster.wait_for(
        lambda: _status_if(kind_cluster, namespace, canaryVersion="1"), 300, "the canary of 1"
    )
    with Load(url, bad=True):
        rolled_back = kind_cluster.wait_for(
            lambda: _status_if(kind_cluster, namespace, rolledBackVersion="1"),
            300,
            "the failing canary to be rolled back",
        )
    status = rolled_back["status"]
    assert status["currentVersion"] == "2"
    assert "canaryVersion" not in status
    assert "canary of version 1 reached no verdict" in status["message"]

    # The canary's pods end gracefully (kube-proxy drops them from the Service meanwhile);
    # once they are gone, every answer comes from version 2.
    def canary_gone() -> bool:
        pods = kind_cluster.items("pods", namespace, status["selector"])
        return not [p for p in pods if p["metadata"]["labels"].get(VERSION_LABEL) == "1"]

    kind_cluster.wait_for(canary_gone, 120, "the canary's pods to end")
    with Load(url) as after:
        time.sleep(5)
    assert after.failures() == [] and after.versions() == {"2"}


def _status_if(kind_cluster: Any, namespace: str, **wanted: str) -> dict[str, Any] | None:
    body: dict[str, Any] = kind_cluster.get("modeldeployment", "canary", namespace)
    status = body.get("status") or {}
    return body if all(status.get(key) == value for key, value in wanted.items()) else None


def test_5_every_pod_is_admitted_as_restricted_and_runs_as_non_root(
    kind_cluster: Any, namespace: str
) -> None:
    namespaces = [namespace, kindenv.OPERATOR_NAMESPACE, kindenv.S3_NAMESPACE]
    seen = 0
    for name in namespaces:
        labels = json.loads(kind_cluster.kubectl("get", "namespace", name, "-o", "json"))[
            "metadata"
        ]["labels"]
        assert labels.get("pod-security.kubernetes.io/enforce") == "restricted", name
        events = json.loads(kind_cluster.kubectl("get", "events", "-n", name, "-o", "json"))
        refused = [e["message"] for e in events["items"] if "PodSecurity" in e.get("message", "")]
        assert refused == [], refused
        for pod in kind_cluster.items("pods", name):
            seen += 1
            if pod["status"].get("phase") != "Running":
                continue
            container = pod["spec"]["containers"][0]["name"]
            uid = kind_cluster.kubectl(
                "exec", "-n", name, pod["metadata"]["name"], "-c", container, "--", "id", "-u"
            )
            assert uid.strip() == "65532", (name, pod["metadata"]["name"])
    assert seen >= 6  # operator, S3, the Job's pod, serving and canary pods
