"""ctrain's main user stories on a kind cluster: train iris, serve it, retrain, promote.

What a user does, with the real image and the chart: a TrainingJob registers a first
(deliberately weak) model, which becomes the champion; a ModelDeployment serves it over
the Open Inference Protocol; a ContinuousTraining run, started by hand, trains a better
model, which beats the champion on the same holdout and is promoted, and the deployment
rolls it out by itself, with no change to its spec. At each step the Argo CD health
check of deploy/argocd judges the live object, as Argo CD would.

The module is skipped, saying what is missing, where Docker or kind is unavailable.
The model name is unique per session, so a reused cluster's registry does not leak
versions into the assertions.
"""

import importlib.util
import json
import urllib.request
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path) -> ModuleType:
    """Import a helper by path (conftest.py is not importable by a unique module name)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_missing = _load("ctrain_e2e_kind", Path(__file__).with_name("conftest.py")).missing_prerequisites()
if _missing:
    pytest.skip(
        "kind e2e tests need Docker and kind: " + "; ".join(_missing), allow_module_level=True
    )

MODEL = f"iris-{uuid.uuid4().hex[:6]}"
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]


def _resource(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": name, **metadata},
        "spec": spec,
    }


def _training_spec(estimator: dict[str, Any], gates: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": MODEL,
        "dataset": {"uri": "builtin://iris"},
        "estimator": estimator,
        "evaluation": {"testSize": 0.2, "seed": 42, "metrics": ["accuracy"], "gates": gates},
        "promote": True,
    }


# A one-split tree scores about 0.67 on iris: a champion the retrained model must beat.
WEAK = _training_spec(
    {"type": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 1}}, []
)
STRONG = _training_spec(
    {"type": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 200}},
    [{"metric": "accuracy", "min": 0.9}],
)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def assert_operator_writes_only_status(body: dict[str, Any]) -> None:
    """Only the user's apply (kubectl) owns spec, labels and annotations: no GitOps drift.

    Server-side apply records every writer's fields in managedFields; any other manager
    may own status (the status subresource) and at most metadata.finalizers.
    """
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


def predict(cluster: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST two iris rows to the deployment's Service through a port-forward."""
    endpoint = urlsplit(body["status"]["endpoint"])
    service = (endpoint.hostname or "").split(".")[0]
    with cluster.port_forward(namespace, f"svc/{service}", endpoint.port or 80) as url:
        with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=10) as ready:
            assert ready.status == 200
        request = {
            "inputs": [{"name": "input-0", "shape": [2, 4], "datatype": "FP64", "data": ROWS}]
        }
        post = urllib.request.Request(
            f"{url}/v2/models/{MODEL}/infer",
            data=json.dumps(request).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=10) as answer:
            assert answer.status == 200
            result: dict[str, Any] = json.load(answer)
    return result


@pytest.fixture(scope="module")
def first_run(kind_cluster: Any, namespace: str) -> dict[str, Any]:
    kind_cluster.apply(_resource("TrainingJob", f"{MODEL}-1", WEAK), namespace=namespace)
    return kind_cluster.wait_phase(  # type: ignore[no-any-return]
        "trainingjob", f"{MODEL}-1", namespace, {"Succeeded", "Failed"}
    )


@pytest.fixture(scope="module")
def serving(kind_cluster: Any, namespace: str, first_run: dict[str, Any]) -> str:
    spec = {"model": MODEL, "version": "champion", "replicas": 1}
    kind_cluster.apply(_resource("ModelDeployment", "serving", spec), namespace=namespace)
    kind_cluster.wait_phase("modeldeployment", "serving", namespace, {"Available", "Degraded"})
    return "serving"


def test_training_registers_and_promotes_the_first_version(first_run: dict[str, Any]) -> None:
    status = first_run["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["modelVersion"] == "1"
    assert status["blessed"] is True and status["promoted"] is True
    assert status["artifactUri"].startswith("s3://")
    assert condition(first_run, "Ready")["status"] == "True"
    assert_operator_writes_only_status(first_run)
    assert argocd_health(first_run)["status"] == "Healthy"


def test_serving_answers_predictions(kind_cluster: Any, namespace: str, serving: str) -> None:
    body = kind_cluster.get("modeldeployment", serving, namespace)
    status = body["status"]
    assert status["phase"] == "Available", status.get("message")
    assert status["currentVersion"] == "1"
    assert status.get("readyReplicas") == 1
    assert argocd_health(body) == {
        "status": "Healthy",
        "message": "Serving version 1 (1/1 replicas ready)",
    }
    outputs = {
        output["name"]: output for output in predict(kind_cluster, namespace, body)["outputs"]
    }
    assert outputs["predict"]["shape"][0] == len(ROWS)


def test_retraining_promotes_and_rolls_out(kind_cluster: Any, namespace: str, serving: str) -> None:
    before = kind_cluster.get("modeldeployment", serving, namespace)
    loop = _resource(
        "ContinuousTraining",
        "loop",
        {"template": {"spec": STRONG}},
        annotations={"ctrain.dev/trigger": "e2e-1"},
    )
    kind_cluster.apply(loop, namespace=namespace)

    def finished_run() -> dict[str, Any] | None:
        body: dict[str, Any] = kind_cluster.get("continuoustraining", "loop", namespace)
        status = body.get("status") or {}
        return body if status.get("lastRun") and not status.get("activeRun") else None

    loop_body = kind_cluster.wait_for(
        finished_run, 600, "the manual run of ContinuousTraining loop"
    )
    status = loop_body["status"]
    assert status["lastRunPhase"] == "Succeeded", status.get("message")
    run = kind_cluster.get("trainingjob", status["lastRun"], namespace)
    assert run["status"]["modelVersion"] == "2"
    assert run["status"]["baseline"]["version"] == "1"
    assert run["status"]["promoted"] is True, run["status"].get("decision")
    assert status["champion"]["version"] == "2"
    assert argocd_health(loop_body)["status"] == "Healthy"

    def rolled_out() -> dict[str, Any] | None:
        body: dict[str, Any] = kind_cluster.get("modeldeployment", serving, namespace)
        status = body.get("status") or {}
        done = status.get("phase") == "Available" and status.get("currentVersion") == "2"
        return body if done else None

    after = kind_cluster.wait_for(rolled_out, 600, "the new champion to serve")
    # The promotion reached the deployment through status only: no spec change, so a
    # GitOps tool sees no drift.
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert after["spec"] == before["spec"]
    assert_operator_writes_only_status(after)
    assert_operator_writes_only_status(loop_body)
    assert argocd_health(after)["status"] == "Healthy"
    assert predict(kind_cluster, namespace, after)["outputs"]
