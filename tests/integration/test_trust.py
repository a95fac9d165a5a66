"""Decisions you can trust, in the sandbox: the fair comparison, racing promotions, a trainer
killed after publishing, and deterministic failures that are not retried.

Real operator, real Jobs and trainer pods (containers on the sandbox's node), moto's S3
server over HTTP.
"""

import io
import json
import os
import signal
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kubernetes import client

from ctrain.registry import Registry
from kubehelpers import apply, get, wait_for, wait_phase

pytestmark = pytest.mark.integration
PLURAL = "trainingjobs"
LOGREG = {"type": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}}
FEATURES = ["f0", "f1", "f2", "f3", "f4"]


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def registry(s3) -> Registry:
    return Registry(s3, "models", "ctrain")


def trainingjob(name: str, model: str, uri: str, estimator: dict, **spec_extra) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": {"uri": uri, "target": "label"},
            "estimator": estimator,
            **spec_extra,
        },
    }


def noise(rows: int, seed: int) -> pd.DataFrame:
    """Features and labels that have nothing to do with each other; 70% of labels "no"."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(FEATURES))).round(6), columns=FEATURES)
    frame["label"] = np.where(rng.random(rows) < 0.3, "yes", "no")
    return frame


def upload(s3, key: str, frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    s3.put_object(Bucket="datasets", Key=key, Body=buffer.getvalue().encode())
    return f"s3://datasets/{key}"


def finished(custom, namespace: str, name: str, timeout: float = 420) -> dict:
    body = wait_phase(custom, PLURAL, namespace, name, ("Succeeded", "Failed"), timeout=timeout)
    assert body["status"]["phase"] == "Succeeded", body["status"].get("message")
    return body["status"]


def test_a_memorising_champion_is_scored_near_chance_on_rows_it_never_saw(
    sandbox, custom, s3, registry, ml_namespace
):
    model = f"noise-{uuid.uuid4().hex[:6]}"
    first = noise(1000, seed=1)
    uri = upload(s3, f"{model}/day1.csv", first)
    knn = {"type": "sklearn.neighbors.KNeighborsClassifier", "params": {"n_neighbors": 1}}
    apply(sandbox, ml_namespace, trainingjob("memorise", model, uri, knn))
    champion = finished(custom, ml_namespace, "memorise")
    assert champion["promoted"] is True and champion["comparison"]["verdict"] == "NoChampion"

    # The data accumulates: day 1's rows stay, day 2's arrive.
    grown = pd.concat([first, noise(1000, seed=2)], ignore_index=True)
    uri = upload(s3, f"{model}/day2.csv", grown)
    apply(sandbox, ml_namespace, trainingjob("challenge", model, uri, LOGREG))
    status = finished(custom, ml_namespace, "challenge")
    comparison = status["comparison"]
    assert comparison["championVersion"] == "1"
    assert (comparison["excludedRows"], comparison["championSeenRows"]) == (0, 0)
    assert comparison["holdoutRows"] > 300
    # 1-NN on noise: right on unseen rows with chance 0.7^2 + 0.3^2 = 0.58; the challenger
    # predicts the majority (0.7). Honestly scored, the champion does not block it.
    assert 0.5 < comparison["champion"]["accuracy"] < 0.66
    assert comparison["challenger"]["accuracy"] > comparison["champion"]["accuracy"]
    assert comparison["verdict"] == "Better"
    assert comparison["test"] == "McNemar" and comparison["pValue"] < 0.05
    low, high = comparison["confidenceInterval"]
    assert 0 < low <= comparison["delta"] <= high
    assert status["promoted"] is True and registry.champion(model) == "2"

    # What the old comparison did: score the champion on rows it trained on, where it is
    # (nearly) perfect.
    knn_model = registry.load_model(model, "1")
    seen = first[~first.index.isin(_holdout_index(first, registry, model, "1"))]
    assert (knn_model.predict(seen[FEATURES].to_numpy()) == seen["label"]).mean() > 0.99

    # A challenger with another seed splits differently: rows the champion (v2) may have
    # trained on are left out and counted, never scored.
    other = trainingjob(
        "reseeded", model, uri, LOGREG, evaluation={"seed": 7, "significance": {"test": "McNemar"}}
    )
    apply(sandbox, ml_namespace, other)
    reseeded = finished(custom, ml_namespace, "reseeded")["comparison"]
    test_rows = registry.metadata(model, "3").split.test_rows
    assert reseeded["excludedRows"] > 0 and reseeded["championSeenRows"] == 0
    assert reseeded["holdoutRows"] + reseeded["excludedRows"] == test_rows
    assert reseeded["verdict"] == "NotBetter"  # two majority voters: no significant gain


def _holdout_index(frame: pd.DataFrame, registry: Registry, model: str, version: str):
    from ctrain.trainer.split import HashSplit

    split = HashSplit.from_record(registry.metadata(model, version).split)
    assert split is not None
    return frame.index[split.held_out(frame)]


def test_concurrent_runs_racing_to_promote_leave_a_log_without_gaps(
    sandbox, custom, s3, registry, ml_namespace
):
    model = f"race-{uuid.uuid4().hex[:6]}"
    strengths = [1, 2, 5, 500]  # max_iter: each run may beat the ones before it
    for number, max_iter in enumerate(strengths):
        estimator = {"type": LOGREG["type"], "params": {"max_iter": max_iter}}
        spec = trainingjob(f"racer-{number}", model, "builtin://iris", estimator)
        spec["spec"]["dataset"] = {"uri": "builtin://iris"}
        apply(sandbox, ml_namespace, spec)
    statuses = [finished(custom, ml_namespace, f"racer-{n}") for n in range(len(strengths))]
    history = registry.champion_history(model)
    previous = None
    for change in history:
        assert change.from_version == previous, [c.to_json() for c in history]
        previous = change.to_version
    promoted = sorted(s["modelVersion"] for s in statuses if s["promoted"])
    assert promoted, "at least the first run is promoted"
    assert sorted(c.to_version for c in history) == promoted
    for status in statuses:
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["reason"] in ("Promoted", "NotPromoted", "ChampionMoved")
    assert registry.champion(model) == history[-1].to_version
    alias = s3.get_object(Bucket="models", Key=f"ctrain/{model}/aliases/champion")["Body"]
    assert alias.read().decode() == history[-1].to_version
    assert sorted(registry.list_versions(model), key=int) == sorted(
        (s["modelVersion"] for s in statuses), key=int
    )


def _trainer_processes(uid: str) -> list[int]:
    """Processes of the trainer container of the TrainingJob with this uid: the node's
    containers are processes of this machine's kernel, visible in our /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"CTRAIN_TRAININGJOB_UID={uid}".encode() in environ:
            found.append(int(entry.name))
    return found


def test_a_trainer_killed_after_publishing_still_yields_one_version(
    sandbox, custom, core, s3, registry, ml_namespace
):
    model = f"killed-{uuid.uuid4().hex[:6]}"
    job = trainingjob("killed", model, "builtin://iris", LOGREG, backoffLimit=2)
    job["spec"]["dataset"] = {"uri": "builtin://iris"}
    apply(sandbox, ml_namespace, job)
    uid = get(custom, PLURAL, ml_namespace, "killed")["metadata"]["uid"]
    key = f"ctrain/{model}/versions/1/metadata.json"

    def published() -> bool:
        try:
            s3.head_object(Bucket="models", Key=key)
        except s3.exceptions.ClientError:
            return False
        return True

    wait_for(published, timeout=300, interval=0.01, what="the first attempt to publish v1")
    pids = _trainer_processes(uid)
    assert pids, "the trainer exited before it could be killed"
    for group in {os.getpgid(pid) for pid in pids}:
        os.killpg(group, signal.SIGKILL)

    status = finished(custom, ml_namespace, "killed")
    assert status["modelVersion"] == "1"
    assert registry.list_versions(model) == ["1"]
    assert status["promoted"] is True and registry.champion(model) == "1"
    assert len(registry.champion_history(model)) == 1
    pods = core.list_namespaced_pod(ml_namespace, label_selector="ctrain.dev/trainingjob=killed")
    exits = sorted(
        state.terminated.exit_code
        for pod in pods.items
        for state in [pod.status.container_statuses[0].state]
        if state.terminated is not None
    )
    assert exits == [0, 137]  # killed once, then the retry reported the published version
    metadata = registry.metadata(model, "1")
    assert metadata.training_job["uid"] == uid


def test_invalid_data_fails_at_once_without_retries(sandbox, custom, core, s3, ml_namespace):
    model = f"invalid-{uuid.uuid4().hex[:6]}"
    frame = noise(200, seed=3)
    frame.loc[0, "f0"] = 1000.0
    uri = upload(s3, f"{model}/bad.csv", frame)
    job = trainingjob("invalid", model, uri, LOGREG, backoffLimit=3)
    job["spec"]["dataset"]["expectations"] = {"columns": {"f0": {"max": 100}}}
    apply(sandbox, ml_namespace, job)
    body = wait_phase(custom, PLURAL, ml_namespace, "invalid", ("Succeeded", "Failed"))
    assert body["status"]["phase"] == "Failed"
    assert body["status"]["message"].startswith("DataValidationFailed")
    time.sleep(5)  # a retry, if there were one, would start now
    pods = core.list_namespaced_pod(ml_namespace, label_selector="ctrain.dev/trainingjob=invalid")
    assert len(pods.items) == 1
    state = pods.items[0].status.container_statuses[0].state
    assert state.terminated.exit_code == 11
    message = json.loads(state.terminated.message)
    assert message["reason"] == "DataValidationFailed"
