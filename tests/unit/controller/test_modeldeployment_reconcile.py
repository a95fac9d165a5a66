"""The ModelDeployment reconciler's API calls against the recording fake, with its model
registry in a real S3 API over HTTP (moto's server) read through the storage watch."""

import http.server
import threading
from collections.abc import Iterator

import pytest
from fakes import Harness

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.controller.config import OperatorConfig
from ctrain.controller.kube import DEPLOYMENTS, MODELDEPLOYMENTS, PODS, SERVICES
from ctrain.controller.modeldeployment.builders import (
    DEPLOYMENT_LABEL,
    HTTP_PORT,
    TRACK_LABEL,
    VERSION_LABEL,
)
from ctrain.registry import Registry

pytest_plugins = ["s3_fixtures"]
pytestmark = pytest.mark.unit
NS = "ml"


def publish(registry: Registry, model: str, count: int) -> None:
    for _ in range(count):
        version = registry.reserve_version(model)
        registry.publish(model, version, b"m", ModelMetadata(), Reference(rows=1))
    registry.set_champion(model, "1", "test")


def deployment(name: str, model: str, **spec: object) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"model": model, "replicas": 0, **spec},
    }


@pytest.fixture
def harness(moto_endpoint: str, s3_env: dict[str, str], bucket: str) -> Harness:
    config = OperatorConfig(s3_endpoint=moto_endpoint, default_bucket=bucket)
    return Harness(config)


def complete(harness: Harness, name: str) -> None:
    """What the Deployment controller reports once the template is rolled out."""
    body = harness.api.find(DEPLOYMENTS, NS, name)
    assert body is not None
    replicas = body["spec"]["replicas"]
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        **{key: replicas for key in ("replicas", "updatedReplicas", "availableReplicas")},
        "readyReplicas": replicas,
    }
    harness.api.put(DEPLOYMENTS, body)


def template_version(harness: Harness, name: str) -> str:
    body = harness.api.find(DEPLOYMENTS, NS, name)
    assert body is not None
    return str(body["spec"]["template"]["metadata"]["labels"][VERSION_LABEL])


def test_first_pass_waits_for_the_registry_then_creates_its_children_once(
    harness: Harness, registry: Registry
) -> None:
    publish(registry, "iris", 1)
    harness.api.put(MODELDEPLOYMENTS, deployment("serving", "iris"))
    harness.drain()
    assert harness.api.writes() == [
        ("create", "Deployment", "serving"),
        ("patch_status", "ModelDeployment", "serving"),
        ("event", "RollingOut"),  # one Event per transition: it tells "Progressing" too
        ("create", "Service", "serving"),  # last: a cluster IP can take a while
    ]
    complete(harness, "serving")
    harness.api.reset()
    harness.drain()
    assert harness.api.writes() == [
        ("patch_status", "ModelDeployment", "serving"),
        ("event", "RolloutComplete"),
    ]
    status = harness.api.find(MODELDEPLOYMENTS, NS, "serving")["status"]
    assert (status["phase"], status["currentVersion"]) == ("Available", "1")


def test_at_rest_a_pass_calls_nothing_and_asks_for_no_timer(
    harness: Harness, registry: Registry
) -> None:
    publish(registry, "iris", 1)
    harness.api.put(MODELDEPLOYMENTS, deployment("serving", "iris"))
    harness.drain()
    complete(harness, "serving")
    harness.drain()
    harness.api.reset()
    for kind, name in ((MODELDEPLOYMENTS, "serving"), (DEPLOYMENTS, "serving")):
        harness.api.put(kind, harness.api.find(kind, NS, name))  # resyncs, relists
    harness.drain(storage=False)
    assert harness.api.calls == []  # no Service POST, no Deployment read, no status write
    assert harness.runtime.loops["ModelDeployment"].queue.scheduled() == 0


def test_a_moved_champion_reaches_every_follower_with_one_read(
    harness: Harness, registry: Registry
) -> None:
    publish(registry, "iris", 2)
    for index in range(5):
        harness.api.put(MODELDEPLOYMENTS, deployment(f"serving-{index}", "iris"))
    harness.drain()
    assert len(harness.context.storage) == 1  # one fact for the five of them
    registry.set_champion("iris", "2", "test: a new champion")
    harness.api.reset()
    endpoint = next(iter(harness.context.storage._entries)).endpoint
    harness.context.storage._entries[next(iter(harness.context.storage._entries))].due = 0
    harness.runtime.wake(endpoint)
    harness.drain()
    patched = sorted(call[2] for call in harness.api.calls if call[:2] == ("patch", "Deployment"))
    assert patched == [f"serving-{index}" for index in range(5)]
    assert {template_version(harness, f"serving-{i}") for i in range(5)} == {"2"}


def test_an_invalid_spec_is_degraded_without_children(harness: Harness) -> None:
    body = deployment("broken", "iris")
    body["spec"]["replicas"] = -1
    harness.api.put(MODELDEPLOYMENTS, body)
    harness.drain()
    status = harness.api.find(MODELDEPLOYMENTS, NS, "broken")["status"]
    assert status["phase"] == "Degraded"
    assert "spec.replicas" in status["message"]
    assert harness.api.find(SERVICES, NS, "broken") is None
    assert harness.runtime.loops["ModelDeployment"].queue.scheduled() == 0


def test_a_deleted_modeldeployment_leaves_no_memory(harness: Harness, registry: Registry) -> None:
    publish(registry, "iris", 1)
    harness.api.put(
        MODELDEPLOYMENTS, deployment("serving", "iris", monitoring={"drift": {"enabled": True}})
    )
    harness.drain()
    assert len(harness.context.storage) == 1
    harness.api.remove(MODELDEPLOYMENTS, NS, "serving")
    harness.drain()
    assert len(harness.context.storage) == 0
    assert len(harness.context.memory) == 0
    assert harness.context.store(MODELDEPLOYMENTS).get(NS, "serving") is None


def stuck(harness: Harness, name: str) -> None:
    """What the Deployment controller reports when new pods miss progressDeadlineSeconds."""
    body = harness.api.find(DEPLOYMENTS, NS, name)
    assert body is not None
    body["status"] = {
        "observedGeneration": body["metadata"]["generation"],
        "replicas": 1,
        "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}
        ],
    }
    harness.api.put(DEPLOYMENTS, body)


POD_IP = "127.0.0.87"  # a loopback address of its own: the "pod" the operator scrapes
LOAD_FAILED = (
    "# TYPE ctrain_serving_model_load_failures counter\n"
    'ctrain_serving_model_load_failures_total{model="iris",reason="IntegrityError"} 3.0\n'
)


@pytest.fixture
def failing_server() -> Iterator[None]:
    """What `ctrain serve` answers on /metrics while its model fails its sha256 check."""

    class Metrics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = LOAD_FAILED.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((POD_IP, HTTP_PORT), Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()


def not_ready_pod(version: str) -> dict:
    labels = {DEPLOYMENT_LABEL: "serving", VERSION_LABEL: version, TRACK_LABEL: "stable"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"serving-{version}", "namespace": NS, "uid": f"p{version}",
                     "labels": labels},
        "status": {"podIP": POD_IP, "conditions": [{"type": "Ready", "status": "False"}]},
    }  # fmt: skip


def test_a_version_whose_pods_never_load_it_is_rejected_and_the_champion_moves_back(
    harness: Harness, registry: Registry, failing_server: None
) -> None:
    publish(registry, "iris", 2)
    harness.api.put(MODELDEPLOYMENTS, deployment("serving", "iris", replicas=1))
    harness.drain()
    complete(harness, "serving")
    harness.drain()
    registry.set_champion("iris", "2", "test: a version that will not load")
    harness.context.storage.refresh(next(iter(harness.context.storage._entries)))
    harness.drain()
    assert template_version(harness, "serving") == "2"
    harness.api.put(PODS, not_ready_pod("2"))
    stuck(harness, "serving")
    harness.api.reset()
    harness.drain()
    mark = registry.rejected("iris", "2")
    assert mark is not None and "did not become ready" in mark.reason
    assert "the model failed to load (IntegrityError)" in mark.reason
    assert mark.by == f"ModelDeployment {NS}/serving"
    last = registry.champion_history("iris")[-1]
    assert (last.action, last.from_version, last.to_version) == ("demote", "2", "1")
    assert template_version(harness, "serving") == "1"  # rolled back
    status = harness.api.find(MODELDEPLOYMENTS, NS, "serving")["status"]
    assert status["rejectedVersion"] == "2"
    events = [call for call in harness.api.writes() if call[0] == "event"]
    assert ("event", "ModelRejected") in events and ("event", "RolledBack") in events
    harness.api.reset()
    body = harness.api.find(MODELDEPLOYMENTS, NS, "serving")
    harness.api.put(MODELDEPLOYMENTS, body)  # a resync: rejected once, moved once
    harness.drain()
    assert ("event", "ModelRejected") not in harness.api.writes()
    assert registry.champion_history("iris")[-1] == last


def test_a_version_that_is_only_slow_to_get_ready_is_rolled_back_but_not_rejected(
    harness: Harness, registry: Registry
) -> None:
    publish(registry, "iris", 2)
    harness.api.put(MODELDEPLOYMENTS, deployment("serving", "iris", replicas=1))
    harness.drain()
    complete(harness, "serving")
    harness.drain()
    registry.set_champion("iris", "2", "test: a version on a slow node")
    harness.context.storage.refresh(next(iter(harness.context.storage._entries)))
    harness.drain()
    harness.api.put(PODS, not_ready_pod("2"))  # no server answers: no word of a model fault
    stuck(harness, "serving")
    harness.drain()
    assert template_version(harness, "serving") == "1"  # rolled back all the same
    assert registry.rejected("iris", "2") is None
    assert registry.champion("iris") == "2"
    status = harness.api.find(MODELDEPLOYMENTS, NS, "serving")["status"]
    assert "rejectedVersion" not in status
