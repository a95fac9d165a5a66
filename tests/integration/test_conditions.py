"""Conditions as tools read them, on objects the real operator wrote in the sandbox.

`kubectl wait --for=condition=Failed` on a failing TrainingJob returns as soon as the run
failed (not at its timeout), `--for=condition=Complete` on a succeeding one; kstatus'
own status.Compute (the library Flux uses, built from the Go module proxy) judges a
running TrainingJob InProgress, a succeeded one Current and a failed one Failed, and a
ContinuousTraining without a champion InProgress.
"""

import uuid

import kstatushelpers
import pytest
from kubernetes import client

from kubehelpers import apply, get, iris_trainingjob, kubectl, wait_for, wait_phase

pytestmark = pytest.mark.integration
PLURAL = "trainingjobs"


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture(scope="module")
def kstatus() -> str:
    return kstatushelpers.ensure()


def test_kubectl_wait_and_kstatus_judge_trainingjobs(sandbox, custom, ml_namespace, kstatus):
    model = f"iris-{uuid.uuid4().hex[:6]}"
    good = iris_trainingjob("good", model)
    bad = iris_trainingjob(
        "bad",
        model,
        dataset={"uri": "s3://datasets/does/not/exist.csv", "target": "species"},
        backoffLimit=0,
    )
    apply(sandbox, ml_namespace, good)
    apply(sandbox, ml_namespace, bad)

    # While it runs (or waits for its pod): InProgress, never Current before the outcome.
    running = wait_for(
        lambda: (
            (body := get(custom, PLURAL, ml_namespace, "good"))
            and (body.get("status") or {}).get("phase") in ("Pending", "Running")
            and body
        ),
        timeout=120,
        interval=0.2,
        what="the run before its outcome",
    )
    assert kstatushelpers.verdicts([running], kstatus) == ["InProgress"]
    reconciling = {c["type"]: c for c in running["status"]["conditions"]}["Reconciling"]
    assert reconciling["status"] == "True"
    assert reconciling["observedGeneration"] == running["metadata"]["generation"]

    # The wait starts before the failure and ends with it, well inside its timeout.
    waited = kubectl(
        sandbox,
        "wait",
        "-n",
        ml_namespace,
        "--for=condition=Failed",
        "trainingjob/bad",
        "--timeout=240s",
        check=False,
    )
    assert waited.returncode == 0, waited.stderr
    assert "condition met" in waited.stdout
    failed = get(custom, PLURAL, ml_namespace, "bad")
    assert failed["status"]["phase"] == "Failed"
    # Once failed, the same wait returns at once, and waiting for Complete cannot succeed.
    again = kubectl(
        sandbox,
        "wait",
        "-n",
        ml_namespace,
        "--for=condition=Failed",
        "tj/bad",
        "--timeout=1s",
        check=False,
    )
    assert again.returncode == 0, again.stderr
    never = kubectl(
        sandbox,
        "wait",
        "-n",
        ml_namespace,
        "--for=condition=Complete",
        "tj/bad",
        "--timeout=1s",
        check=False,
    )
    assert never.returncode != 0 and "timed out" in never.stderr

    conditions = {c["type"]: c for c in failed["status"]["conditions"]}
    assert conditions["Failed"]["reason"] == conditions["Ready"]["reason"] == "DatasetNotFound"
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Reconciling"]["status"] == "False"
    assert "Complete" not in conditions

    done = kubectl(
        sandbox,
        "wait",
        "-n",
        ml_namespace,
        "--for=condition=Complete",
        "trainingjob/good",
        "--timeout=240s",
        check=False,
    )
    assert done.returncode == 0, done.stderr
    succeeded = get(custom, PLURAL, ml_namespace, "good")
    assert succeeded["status"]["phase"] == "Succeeded"
    assert {c["type"]: c["status"] for c in succeeded["status"]["conditions"]}["Stalled"] == (
        "False"
    )

    assert kstatushelpers.verdicts([succeeded, failed], kstatus) == ["Current", "Failed"]


def test_a_loop_without_a_champion_is_not_ready(sandbox, custom, ml_namespace, kstatus):
    loop = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ContinuousTraining",
        "metadata": {"name": "waiting"},
        "spec": {
            "template": {"spec": iris_trainingjob("x", f"iris-{uuid.uuid4().hex[:6]}")["spec"]},
            "triggers": {"schedule": "0 3 * * *"},
        },
    }
    apply(sandbox, ml_namespace, loop)
    body = wait_phase(custom, "continuoustrainings", ml_namespace, "waiting", ("Idle",), 60)
    conditions = {c["type"]: c for c in body["status"]["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False",
        "NoChampion",
    )
    assert conditions["Reconciling"]["status"] == "True"
    assert kstatushelpers.verdicts([body], kstatus) == ["InProgress"]
