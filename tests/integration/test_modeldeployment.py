"""ModelDeployments served by real pods in the sandbox, driven by the real operator.

Models are trained with the real trainer (`ctrain train`) into the sandbox's registry;
predictions go through tritonclient's HTTP client, an independent Open Inference Protocol
implementation, to the pods the Service's EndpointSlice lists (no kube-proxy here).
"""

import json
import os
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
import tritonclient.http as triton
from kubernetes import client
from sklearn.datasets import load_iris

from ctrain.registry import Registry
from kubehelpers import apply, events_until, get, reasons_until, settle, wait_for

pytestmark = pytest.mark.integration
PLURAL = "modeldeployments"
IRIS = load_iris()


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def registry(s3) -> Registry:
    return Registry(s3, "models", "ctrain")


def train(
    sandbox,
    model: str,
    estimator: dict | None = None,
    promote: bool = True,
    uri: str = "builtin://iris",
) -> dict:
    """Train one version with the real trainer; return its summary."""
    spec = {
        "model": model,
        "dataset": {"uri": uri},
        "estimator": estimator
        or {"type": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
        "evaluation": {"baseline": "none"},
        "promote": promote,
        "storage": {"bucket": "models", "prefix": "ctrain"},
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctrain.cli",
            "train",
            "--spec-json",
            json.dumps(spec),
            "--termination-log",
            os.devnull,
        ],
        env={**os.environ, **sandbox.env()},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def deployment(name: str, model: str, **spec) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        # Generous: on a busy machine a serving pod can take over a minute to load.
        "spec": {"model": model, "replicas": 2, "progressDeadlineSeconds": 240, **spec},
    }


def ready_endpoints(api_client, namespace: str, service: str) -> list[str]:
    slices = (
        client.DiscoveryV1Api(api_client)
        .list_namespaced_endpoint_slice(
            namespace, label_selector=f"kubernetes.io/service-name={service}"
        )
        .items
    )
    return sorted(
        address
        for s in slices
        for e in s.endpoints or []
        if e.conditions.ready
        for address in e.addresses
    )


def wait_available(custom, namespace: str, name: str, version: str, timeout: float = 240) -> dict:
    def done() -> dict | None:
        body = get(custom, PLURAL, namespace, name)
        status = body.get("status") or {}
        if status.get("phase") == "Available" and status.get("currentVersion") == version:
            return body
        return None

    return wait_for(done, timeout=timeout, interval=1, what=f"{name} Available at v{version}")


def infer(address: str, model: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    connection = triton.InferenceServerClient(
        f"{address}:8080", connection_timeout=5, network_timeout=5
    )
    tensor = triton.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows.astype(np.float64))
    outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
    result = connection.infer(model, [tensor], outputs=outputs)
    return result.as_numpy("predict"), result.as_numpy("predict_proba")


class Traffic:
    """Clients sending requests through the Service's ready endpoints, as kube-proxy would."""

    def __init__(self, api_client, namespace: str, service: str, model: str, rows: np.ndarray):
        self.api_client, self.namespace, self.service = api_client, namespace, service
        self.model, self.rows = model, rows
        self.ok = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        endpoints: list[str] = []
        refreshed = 0.0
        turn = 0
        deadline = time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            if time.monotonic() - refreshed > 0.2:
                endpoints = ready_endpoints(self.api_client, self.namespace, self.service)
                refreshed = time.monotonic()
            if not endpoints:
                self.failures.append("no ready endpoint")
                time.sleep(0.2)
                continue
            address = endpoints[turn % len(endpoints)]
            turn += 1
            try:
                infer(address, self.model, self.rows)
                self.ok += 1
            except Exception as error:  # noqa: BLE001 - every failure is recorded and asserted on
                self.failures.append(f"{address}: {error}")

    def __enter__(self) -> "Traffic":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture
def model_name() -> str:
    return f"iris-{uuid.uuid4().hex[:6]}"


def test_champion_is_served_with_correct_predictions(
    sandbox, custom, core, api_client, registry, ml_namespace, model_name
):
    summary = train(sandbox, model_name)
    apply(sandbox, ml_namespace, deployment("iris", model_name))
    body = wait_available(custom, ml_namespace, "iris", summary["version"])
    status = body["status"]
    assert status["readyReplicas"] == 2
    assert (
        status["endpoint"] == f"http://iris.{ml_namespace}.svc.cluster.local/v2/models/{model_name}"
    )
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions["Ready"] == "True"
    assert conditions["Progressing"] == conditions["Degraded"] == "False"
    endpoints = wait_for(
        lambda: (e := ready_endpoints(api_client, ml_namespace, "iris")) and len(e) == 2 and e,
        what="2 ready endpoints",
    )
    expected_model = registry.load_model(model_name, summary["version"])
    rows = IRIS.data[::10]
    for address in endpoints:
        predicted, probabilities = infer(address, model_name, rows)
        expected = expected_model.predict(rows)
        assert [p.decode() if isinstance(p, bytes) else p for p in predicted] == list(expected)
        np.testing.assert_allclose(probabilities, expected_model.predict_proba(rows), rtol=1e-6)
    reasons = reasons_until(core, ml_namespace, "iris", "RollingOut", "RolloutComplete")
    assert "RollingOut" in reasons and "RolloutComplete" in reasons


def test_new_champion_rolls_out_without_a_failed_request(
    sandbox, custom, api_client, ml_namespace, model_name
):
    first = train(sandbox, model_name)
    apply(sandbox, ml_namespace, deployment("iris", model_name))
    wait_available(custom, ml_namespace, "iris", first["version"])
    wait_for(lambda: len(ready_endpoints(api_client, ml_namespace, "iris")) == 2, what="endpoints")
    with Traffic(api_client, ml_namespace, "iris", model_name, IRIS.data[:3]) as traffic:
        time.sleep(2)
        second = train(
            sandbox,
            model_name,
            {
                "type": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 500, "C": 0.5},
            },
        )
        body = wait_available(custom, ml_namespace, "iris", second["version"], timeout=180)
        time.sleep(2)
    assert traffic.failures == []
    assert traffic.ok > 50
    assert body["status"]["previousVersion"] == first["version"]


def test_corrupt_model_is_never_served_and_rolls_back(
    sandbox, custom, core, registry, s3, ml_namespace, model_name
):
    good = train(sandbox, model_name)
    # A generous deadline while the good version starts on a busy machine, then a short one.
    apply(sandbox, ml_namespace, deployment("iris", model_name, progressDeadlineSeconds=240))
    wait_available(custom, ml_namespace, "iris", good["version"], timeout=240)
    apply(sandbox, ml_namespace, deployment("iris", model_name, progressDeadlineSeconds=20))
    bad = train(sandbox, model_name, promote=False)
    key = f"ctrain/{model_name}/versions/{bad['version']}/model.skops"
    tampered = bytearray(s3.get_object(Bucket="models", Key=key)["Body"].read())
    tampered[-10] ^= 0xFF
    s3.put_object(Bucket="models", Key=key, Body=bytes(tampered))
    registry.set_champion(model_name, bad["version"], "test: promote a tampered version")

    def rejected() -> dict | None:
        status = get(custom, PLURAL, ml_namespace, "iris").get("status") or {}
        return status if status.get("rejectedVersion") == bad["version"] else None

    status = wait_for(rejected, timeout=150, interval=1, what="the tampered version rejected")
    assert status["currentVersion"] == good["version"]
    assert_demoted(registry, model_name, bad["version"], good["version"])
    # The champion is the good version again: nothing failed is requested any more.
    status = wait_available(custom, ml_namespace, "iris", good["version"], timeout=90)["status"]
    assert {c["type"]: c["status"] for c in status["conditions"]}["Degraded"] == "False"
    never_ready: list[str] = []

    def only_good_pods_left() -> bool:
        pods = core.list_namespaced_pod(
            ml_namespace, label_selector="ctrain.dev/modeldeployment=iris"
        )
        versions = set()
        for pod in pods.items:
            version = pod.metadata.labels["ctrain.dev/model-version"]
            versions.add(version)
            if version == bad["version"]:
                ready = any(
                    c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
                )
                never_ready.append("ready" if ready else "not ready")
        return versions == {good["version"]}

    wait_for(only_good_pods_left, timeout=90, what="the tampered version's pods removed")
    assert "ready" not in never_ready  # the tampered version never served a request
    reasons = reasons_until(core, ml_namespace, "iris", "RolledBack", "ModelRejected")
    assert "RolledBack" in reasons and "ModelRejected" in reasons


def assert_demoted(registry: Registry, model: str, bad: str, good: str) -> None:
    """`bad` is rejected in the registry and the champion log moved back from it to `good`."""
    mark = registry.rejected(model, bad)
    assert mark is not None and "did not become ready" in mark.reason, mark
    assert mark.by.startswith("ModelDeployment ")
    assert registry.champion(model) == good
    assert registry.resolve(model, "champion") == good
    last = registry.champion_history(model)[-1]
    assert (last.action, last.from_version, last.to_version) == ("demote", bad, good)
    assert last.by == mark.by


def canary_status(custom, namespace: str) -> dict:
    return get(custom, PLURAL, namespace, "iris").get("status") or {}


def test_canary_without_traffic_is_not_promoted_until_traffic_comes(
    sandbox, custom, core, api_client, registry, ml_namespace, model_name
):
    good = train(sandbox, model_name)
    canary = {
        "type": "Canary",
        "canary": {"weight": 50, "promoteAfterSeconds": 5, "minRequests": 40},
    }
    manifest = deployment(
        "iris", model_name, replicas=1, strategy=canary, progressDeadlineSeconds=240
    )
    apply(sandbox, ml_namespace, manifest)
    wait_available(custom, ml_namespace, "iris", good["version"], timeout=240)
    newer = train(sandbox, model_name)
    wait_for(
        lambda: len(ready_endpoints(api_client, ml_namespace, "iris")) == 2,
        timeout=120,
        what="stable and canary endpoints ready",
    )
    waiting = wait_for(
        lambda: (
            (s := canary_status(custom, ml_namespace)).get("canaryAnalysis", {}).get("verdict")
            == "WaitingForTraffic"
            and s
        ),
        timeout=60,
        what="the canary waiting for traffic",
    )
    settle(15)  # three times promoteAfterSeconds: time alone promotes nothing
    idle = canary_status(custom, ml_namespace)
    assert idle["canaryVersion"] == newer["version"] and idle["phase"] == "Progressing"
    assert idle["currentVersion"] == good["version"] == waiting["currentVersion"]
    progressing = next(c for c in idle["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "CanaryWaitingForTraffic"
    assert "0 of the 40 requests" in idle["message"]

    # Good requests, and clients sending malformed rows (400s): a client's error is not
    # the canary's, so it is promoted all the same.
    with (
        Traffic(api_client, ml_namespace, "iris", model_name, IRIS.data[:2]) as traffic,
        Traffic(api_client, ml_namespace, "iris", model_name, IRIS.data[:2, :3]) as clumsy,
    ):
        promoted = wait_available(custom, ml_namespace, "iris", newer["version"], timeout=120)
    assert traffic.ok and clumsy.failures and not clumsy.ok
    assert promoted["status"]["previousVersion"] == good["version"]
    reasons = reasons_until(core, ml_namespace, "iris", "CanaryPromoted")
    assert "CanaryPromoted" in reasons and "CanaryFailed" not in reasons
    assert registry.rejected(model_name, newer["version"]) is None


def test_canary_of_a_failing_version_is_rolled_back_and_demoted(
    sandbox, custom, core, api_client, registry, s3, ml_namespace, model_name
):
    good = train(sandbox, model_name)
    canary = {"type": "Canary", "canary": {"weight": 50, "promoteAfterSeconds": 5}}
    manifest = deployment(
        "iris", model_name, replicas=1, strategy=canary, progressDeadlineSeconds=240
    )
    apply(sandbox, ml_namespace, manifest)
    wait_available(custom, ml_namespace, "iris", good["version"], timeout=240)
    manifest["spec"]["progressDeadlineSeconds"] = 20
    apply(sandbox, ml_namespace, manifest)
    bad = train(sandbox, model_name, promote=False)
    key = f"ctrain/{model_name}/versions/{bad['version']}/model.skops"
    tampered = bytearray(s3.get_object(Bucket="models", Key=key)["Body"].read())
    tampered[-10] ^= 0xFF
    s3.put_object(Bucket="models", Key=key, Body=bytes(tampered))
    registry.set_champion(model_name, bad["version"], "test: promote a tampered version")
    wait_for(
        lambda: canary_status(custom, ml_namespace).get("canaryVersion") == bad["version"],
        timeout=60,
        what="canary started",
    )
    status = wait_for(
        lambda: (
            (s := canary_status(custom, ml_namespace)).get("rejectedVersion") == bad["version"]
            and s
        ),
        timeout=150,
        what="the canary's version rejected",
    )
    assert "canaryVersion" not in status
    assert status["currentVersion"] == good["version"]
    assert_demoted(registry, model_name, bad["version"], good["version"])
    wait_available(custom, ml_namespace, "iris", good["version"], timeout=90)
    wait_for(
        lambda: (
            not client.AppsV1Api(api_client)
            .list_namespaced_deployment(ml_namespace, label_selector="ctrain.dev/track=canary")
            .items
        ),
        what="canary Deployment gone",
    )
    events = events_until(
        core, ml_namespace, "iris",
        lambda events: {"CanaryFailed", "ModelRejected"} <= {reason for reason, _ in events},
    )  # fmt: skip
    assert any(reason == "CanaryFailed" for reason, _ in events)
    rejected = [message for reason, message in events if reason == "ModelRejected"]
    assert rejected and f"moved back to version {good['version']}" in rejected[0]


def test_shifted_inputs_raise_drift_and_in_distribution_does_not(
    sandbox, custom, api_client, ml_namespace, model_name
):
    summary = train(sandbox, model_name)
    monitoring = {
        "drift": {"enabled": True, "threshold": 0.2, "minSamples": 200, "intervalSeconds": 10}
    }
    apply(sandbox, ml_namespace, deployment("iris", model_name, replicas=1, monitoring=monitoring))
    wait_available(custom, ml_namespace, "iris", summary["version"])
    (address,) = wait_for(
        lambda: ready_endpoints(api_client, ml_namespace, "iris"), what="endpoint"
    )
    rng = np.random.default_rng(7)
    for _ in range(10):
        infer(address, model_name, IRIS.data[rng.choice(len(IRIS.data), 32)])

    def drift() -> dict | None:
        status = get(custom, PLURAL, ml_namespace, "iris")["status"]
        found = status.get("drift") or {}
        return found if (found.get("samples") or 0) >= 320 else None

    calm = wait_for(drift, timeout=60, what="drift measured on in-distribution traffic")
    assert calm["detected"] is False
    assert calm["score"] < 0.2
    shifted = IRIS.data[rng.choice(len(IRIS.data), 32)] + np.array([3.0, -1.5, 4.0, 2.0])
    for _ in range(40):
        infer(address, model_name, shifted)
    status = wait_for(
        lambda: (
            (s := get(custom, PLURAL, ml_namespace, "iris")["status"])
            .get("drift", {})
            .get("detected")
            and s
        ),
        timeout=60,
        what="drift detected on shifted traffic",
    )
    assert status["drift"]["score"] > 0.2
    assert set(status["drift"]["features"]) == {
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    }
    drift_condition = next(c for c in status["conditions"] if c["type"] == "DriftDetected")
    assert drift_condition["status"] == "True"
