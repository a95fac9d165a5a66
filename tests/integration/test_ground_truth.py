"""Ground truth closes the loop, in the sandbox: the real operator, real serving and check
pods, moto's S3 over HTTP.

Concept drift: the inputs stay the same (drift cannot see it) but their labels change
meaning. The served model's live accuracy, from its logged predictions joined with the
uploaded labels, drops below the threshold; PerformanceDegraded turns True; the loop
retrains on the labelled production rows (`dataset.feedback`), the new champion rolls
out, and live accuracy on the next labelled traffic recovers.
"""

import io
import json
import uuid

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from kubernetes import client
from sklearn.datasets import load_iris
from test_modeldeployment import deployment, ready_endpoints, train, wait_available

from kubehelpers import apply, get, reasons_until, wait_for

pytestmark = pytest.mark.integration
IRIS = load_iris()
CLASSES = np.asarray(["setosa", "versicolor", "virginica"], dtype=object)
# The new meaning of each class: what was setosa is now called versicolor, and so on.
SHIFTED = {"setosa": "versicolor", "versicolor": "virginica", "virginica": "setosa"}


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def _infer(address: str, model: str, row: np.ndarray, request_id: str) -> str:
    connection = triton.InferenceServerClient(
        f"{address}:8080", connection_timeout=5, network_timeout=5
    )
    tensor = triton.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(row.reshape(1, 4).astype(np.float64))
    result = connection.infer(
        model, [tensor], outputs=[triton.InferRequestedOutput("predict")], request_id=request_id
    )
    return str(result.as_numpy("predict")[0])


def _traffic(address: str, model: str, batch: str) -> pd.DataFrame:
    """Every iris row once; the labels under the new meaning, keyed by request id."""
    ids = [f"{batch}-{i}" for i in range(len(IRIS.data))]
    for request_id, row in zip(ids, IRIS.data, strict=True):
        _infer(address, model, row, request_id)
    truth = [SHIFTED[c] for c in CLASSES[IRIS.target]]
    return pd.DataFrame({"id": ids, "target": truth})


def _upload_labels(s3, model: str, name: str, labels: pd.DataFrame) -> None:
    buffer = io.StringIO()
    labels.to_csv(buffer, index=False)
    key = f"ctrain/{model}/labels/{name}.csv"
    s3.put_object(Bucket="models", Key=key, Body=buffer.getvalue().encode())


def _performance(custom, namespace: str, version: str, degraded: bool):
    def check() -> dict | None:
        status = get(custom, "modeldeployments", namespace, "iris").get("status") or {}
        found = status.get("performance") or {}
        if found.get("version") == version and found.get("degraded") is degraded:
            return status
        return None

    return check


def test_concept_drift_is_measured_retrained_on_production_rows_and_recovers(
    sandbox, s3, core, custom, api_client, ml_namespace
):
    model = f"truth-{uuid.uuid4().hex[:6]}"
    first = train(sandbox, model)
    monitoring = {
        "predictionLog": {"enabled": True, "flushSeconds": 5},
        "performance": {
            "enabled": True,
            "threshold": 0.8,
            "minSamples": 100,
            "windowSeconds": 3600,
            "intervalSeconds": 30,
        },
    }
    # A slow pod start on a busy machine must not read as a failed rollout here.
    md = deployment("iris", model, replicas=1, monitoring=monitoring, progressDeadlineSeconds=600)
    apply(sandbox, ml_namespace, md)
    loop = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ContinuousTraining",
        "metadata": {"name": "retrain"},
        "spec": {
            "template": {
                "spec": {
                    "model": model,
                    "dataset": {
                        "uri": "builtin://iris",
                        "feedback": {"enabled": True, "mode": "Replace", "windowSeconds": 3600},
                    },
                    "estimator": {
                        "type": "sklearn.linear_model.LogisticRegression",
                        "params": {"max_iter": 500},
                    },
                    "evaluation": {"metrics": ["accuracy"]},
                    "storage": {"bucket": "models", "prefix": "ctrain"},
                }
            },
            "triggers": {"onPerformance": {"deployment": "iris", "cooldownSeconds": 0}},
        },
    }
    apply(sandbox, ml_namespace, loop)
    wait_available(custom, ml_namespace, "iris", first["version"])
    (address,) = wait_for(
        lambda: ready_endpoints(api_client, ml_namespace, "iris"), what="serving endpoint"
    )

    # Before labels: judged on nothing, so Unknown (never a pass, never a retraining).
    labels = _traffic(address, model, "a")
    unknown = wait_for(
        lambda: (
            (s := get(custom, "modeldeployments", ml_namespace, "iris").get("status") or {})
            .get("performance", {})
            .get("checkedAt")
            and s
        ),
        timeout=180,
        what="a first performance check",
    )
    condition = next(c for c in unknown["conditions"] if c["type"] == "PerformanceDegraded")
    assert condition["status"] == "Unknown", condition

    _upload_labels(s3, model, "batch-a", labels)
    status = wait_for(
        _performance(custom, ml_namespace, first["version"], True),
        timeout=240,
        interval=2,
        what="live accuracy of the first version judged degraded",
    )
    performance = status["performance"]
    assert performance["metric"] == "accuracy"
    assert performance["labelled"] == 150 and performance["samples"] >= 150
    assert performance["value"] < 0.2  # the old meaning is almost always wrong now
    degraded = next(c for c in status["conditions"] if c["type"] == "PerformanceDegraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "WorseThanThreshold")
    drift_free = [c for c in status["conditions"] if c["type"] == "DriftDetected"]
    assert not drift_free or drift_free[0]["status"] != "True"
    history = json.loads(
        s3.get_object(
            Bucket="models", Key=f"ctrain/{model}/versions/{first['version']}/performance.json"
        )["Body"].read()
    )
    assert history["history"][-1]["value"] == performance["value"]
    assert "WorseThanThreshold" in reasons_until(core, ml_namespace, "iris", "WorseThanThreshold")

    # The loop retrains on the labelled production rows and the new champion rolls out.
    def retrained() -> dict | None:
        loop_status = get(custom, "continuoustrainings", ml_namespace, "retrain").get("status")
        loop_status = loop_status or {}
        champion = (loop_status.get("champion") or {}).get("version")
        if loop_status.get("lastRunPhase") == "Succeeded" and champion != first["version"]:
            return loop_status
        return None

    loop_status = wait_for(retrained, timeout=420, interval=2, what="a retraining run promoted")
    assert loop_status["lastTriggered"]["reason"] == "Performance"
    second = loop_status["champion"]["version"]
    metadata = json.loads(
        s3.get_object(Bucket="models", Key=f"ctrain/{model}/versions/{second}/metadata.json")[
            "Body"
        ].read()
    )
    production = metadata["dataset"]["production"]
    assert (production["mode"], production["baseRows"]) == ("Replace", 0)
    assert production["productionRows"] == 150
    wait_available(custom, ml_namespace, "iris", second, timeout=240)
    (address,) = wait_for(
        lambda: ready_endpoints(api_client, ml_namespace, "iris"), what="serving endpoint"
    )
    setosa_looking = IRIS.data[0]
    assert _infer(address, model, setosa_looking, "probe") == "versicolor"

    # Labelled traffic to the new version: accuracy recovers, the condition clears.
    _upload_labels(s3, model, "batch-b", _traffic(address, model, "b"))
    recovered = wait_for(
        _performance(custom, ml_namespace, second, False),
        timeout=240,
        interval=2,
        what="live accuracy of the retrained version within the threshold",
    )
    assert recovered["performance"]["value"] >= 0.8
    cleared = next(c for c in recovered["conditions"] if c["type"] == "PerformanceDegraded")
    assert (cleared["status"], cleared["reason"]) == ("False", "WithinThreshold")
