"""ContinuousTraining loops applied with kubectl and run by the real operator in the sandbox.

Each test closes one part of the loop: a trigger (manual, cron, new data, drift) starts
exactly one run; Forbid skips, Replace replaces, suspend holds; old runs are pruned while
their model versions stay; a better model moves the champion and a worse one does not.
"""

import io
import time
import uuid
from typing import Any

import numpy as np
import pytest
from kubernetes import client
from sklearn.datasets import load_iris

from kubehelpers import (
    apply,
    events_for,
    events_until,
    get,
    kubectl,
    reasons_until,
    settle,
    wait_for,
)

pytestmark = pytest.mark.integration
PLURAL = "continuoustrainings"
LABEL = "ctrain.dev/continuoustraining"


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def unique_model(prefix: str = "loop") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def loop(
    name: str,
    model: str,
    *,
    triggers: dict | None = None,
    uri: str = "builtin://iris",
    estimator: dict | None = None,
    annotations: dict | None = None,
    template_extra: dict | None = None,
    **spec_extra: Any,
) -> dict:
    dataset = {"uri": uri}
    if uri.startswith("s3://"):
        dataset["target"] = "species"
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ContinuousTraining",
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {
            "template": {
                "spec": {
                    "model": model,
                    "dataset": dataset,
                    "estimator": estimator
                    or {
                        "type": "sklearn.linear_model.LogisticRegression",
                        "params": {"max_iter": 500},
                    },
                    "evaluation": {"metrics": ["accuracy"]},
                    **(template_extra or {}),
                }
            },
            "triggers": triggers or {},
            **spec_extra,
        },
    }


def iris_csv(noise: bool = False) -> bytes:
    """Iris as CSV; with `noise`, features carry no signal (a model trained on it is bad)."""
    frame = load_iris(as_frame=True).frame
    frame["species"] = [["setosa", "versicolor", "virginica"][t] for t in frame.pop("target")]
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    if noise:
        random = np.random.default_rng(7)
        for column in frame.columns[:4]:
            frame[column] = random.uniform(0, 8, len(frame)).round(1)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def status_of(custom, namespace: str, name: str) -> dict:
    return get(custom, PLURAL, namespace, name).get("status") or {}


def runs_of(custom, namespace: str, name: str, *, include_deleting: bool = False) -> list[dict]:
    """The loop's TrainingJobs, oldest first."""
    items = custom.list_namespaced_custom_object(
        "ctrain.dev", "v1alpha1", namespace, "trainingjobs", label_selector=f"{LABEL}={name}"
    )["items"]
    if not include_deleting:
        items = [i for i in items if not i["metadata"].get("deletionTimestamp")]
    return sorted(items, key=lambda i: (i["metadata"]["creationTimestamp"], i["metadata"]["name"]))


def names(runs: list[dict]) -> list[str]:
    return [r["metadata"]["name"] for r in runs]


def annotate(sandbox, namespace: str, name: str, value: str) -> None:
    kubectl(
        sandbox,
        "annotate",
        "--overwrite",
        "-n",
        namespace,
        f"ct/{name}",
        f"ctrain.dev/trigger={value}",
    )


def wait_runs(custom, namespace: str, name: str, count: int, timeout: float = 60) -> list[dict]:
    def enough() -> list[dict] | None:
        runs = runs_of(custom, namespace, name)
        return runs if len(runs) >= count else None

    return wait_for(enough, timeout=timeout, interval=1, what=f"{count} runs of {name}")


def wait_finished(custom, namespace: str, name: str, run: str, timeout: float = 180) -> dict:
    """The loop's status once it recorded `run` as its last finished run."""

    def recorded() -> dict | None:
        status = status_of(custom, namespace, name)
        done = status.get("lastRun") == run and status.get("activeRun") != run
        return status if done and status.get("lastRunPhase") else None

    return wait_for(recorded, timeout=timeout, interval=1, what=f"{name} to record {run}")


def condition(status: dict, kind: str) -> dict:
    return next(c for c in status.get("conditions") or [] if c["type"] == kind)


def champion_alias(s3, model: str) -> str:
    body = s3.get_object(Bucket="models", Key=f"ctrain/{model}/aliases/champion")["Body"]
    return body.read().decode().strip()


def test_manual_trigger_runs_once_per_value(sandbox, custom, core, ml_namespace):
    model = unique_model()
    manifest = loop("manual", model)
    manifest["spec"]["template"]["metadata"] = {
        "labels": {"team": "ml", "app.kubernetes.io/instance": "gitops-app"},
        "annotations": {"argocd.argoproj.io/tracking-id": "app:ctrain.dev/ContinuousTraining"},
    }
    apply(sandbox, ml_namespace, manifest)
    idle = wait_for(lambda: status_of(custom, ml_namespace, "manual").get("phase"), timeout=30)
    assert idle == "Idle" and not runs_of(custom, ml_namespace, "manual")

    annotate(sandbox, ml_namespace, "manual", "1")
    [first] = wait_runs(custom, ml_namespace, "manual", 1)
    meta = first["metadata"]
    assert meta["labels"]["ctrain.dev/trigger-reason"] == "Manual"
    assert meta["labels"]["team"] == "ml" and "app.kubernetes.io/instance" not in meta["labels"]
    assert not any(k.startswith("argocd.argoproj.io/") for k in meta.get("annotations") or {})
    [owner] = meta["ownerReferences"]
    assert owner["kind"] == "ContinuousTraining" and owner["controller"] is True
    status = wait_finished(custom, ml_namespace, "manual", meta["name"])
    assert status["lastRunPhase"] == "Succeeded", status.get("message")
    assert status["observedTrigger"] == "1"
    assert status["lastTriggered"]["reason"] == "Manual"
    assert status["champion"]["version"] == "1" and status["champion"]["metrics"]["accuracy"] > 0.8
    assert condition(status, "Ready")["reason"] == "RunSucceeded"
    assert condition(status, "Running")["status"] == "False"

    annotate(sandbox, ml_namespace, "manual", "2")
    second = wait_runs(custom, ml_namespace, "manual", 2)[1]["metadata"]["name"]
    wait_finished(custom, ml_namespace, "manual", second)
    settle(2)  # the last Events and status write of that run
    version = get(custom, PLURAL, ml_namespace, "manual")["metadata"]["resourceVersion"]
    annotate(sandbox, ml_namespace, "manual", "2")  # the same value again: nothing new
    settle(12)
    assert names(runs_of(custom, ml_namespace, "manual")) == [meta["name"], second]
    # level-triggered without churn: resyncs and registry reads write nothing when idle
    assert get(custom, PLURAL, ml_namespace, "manual")["metadata"]["resourceVersion"] == version

    reasons = reasons_until(
        core, ml_namespace, "manual",
        "Triggered", "Triggered", "RunSucceeded", "RunSucceeded", "ChampionChanged",
    )  # fmt: skip
    assert reasons.count("Triggered") == 2 and reasons.count("RunSucceeded") == 2
    assert "ChampionChanged" in reasons
    body = get(custom, PLURAL, ml_namespace, "manual")
    assert not body["metadata"].get("finalizers")  # the operator never writes the user's object
    assert set(body["metadata"]["annotations"]) <= {
        "ctrain.dev/trigger",
        "kubectl.kubernetes.io/last-applied-configuration",
    }
    table = kubectl(sandbox, "get", "ct", "manual", "-n", ml_namespace).stdout
    assert "Idle" in table and model in table


def test_schedule_starts_a_run_on_the_next_slot(sandbox, custom, ml_namespace):
    apply(
        sandbox,
        ml_namespace,
        loop("cron", unique_model(), triggers={"schedule": "* * * * *", "timeZone": "Asia/Tokyo"}),
    )
    [run] = wait_runs(custom, ml_namespace, "cron", 1, timeout=80)
    assert run["metadata"]["labels"]["ctrain.dev/trigger-reason"] == "Schedule"
    status = status_of(custom, ml_namespace, "cron")
    slot = status["lastScheduleTime"]
    assert slot.endswith(":00Z"), slot
    assert status["lastTriggered"]["reason"] == "Schedule"
    assert slot in status["lastTriggered"]["detail"]
    assert len(runs_of(custom, ml_namespace, "cron")) == 1  # one run for that slot


def test_new_data_closes_the_loop_through_the_registry(sandbox, custom, core, s3, ml_namespace):
    model = unique_model("flowers")
    key = f"{model}/iris.csv"
    s3.put_object(Bucket="datasets", Key=key, Body=iris_csv(noise=True))
    manifest = loop(
        "data",
        model,
        uri=f"s3://datasets/{key}",
        triggers={"onNewData": {"pollIntervalSeconds": 10}},
        successfulRunsHistoryLimit=2,
    )
    apply(sandbox, ml_namespace, manifest)

    # data never trained on: the first run, on useless data, makes a poor first champion
    [first] = names(wait_runs(custom, ml_namespace, "data", 1, timeout=60))
    status = wait_finished(custom, ml_namespace, "data", first)
    assert status["lastRunPhase"] == "Succeeded", status.get("message")
    assert status["lastTriggered"]["reason"] == "NewData"
    assert status["dataVersion"].startswith("etag:")
    assert status["champion"]["version"] == "1"
    poor = status["champion"]["metrics"]["accuracy"]

    # better data: the run is blessed and the champion moves
    s3.put_object(Bucket="datasets", Key=key, Body=iris_csv())
    second = names(wait_runs(custom, ml_namespace, "data", 2, timeout=60))[1]
    status = wait_finished(custom, ml_namespace, "data", second)
    assert status["lastTriggered"]["reason"] == "NewData"
    assert status["champion"]["version"] == "2" == champion_alias(s3, model)
    assert status["champion"]["metrics"]["accuracy"] > poor
    assert "promoted to champion" in status["message"], status["message"]
    assert "promoted to champion" in status["lastDecision"]

    # the same bytes again (same ETag) and time passing: no second run on that data
    s3.put_object(Bucket="datasets", Key=key, Body=iris_csv())
    settle(15)
    assert names(runs_of(custom, ml_namespace, "data")) == [first, second]

    # a worse model, by hand: the champion is kept and the message has both metrics
    worse = loop(
        "data",
        model,
        uri=f"s3://datasets/{key}",
        triggers={"onNewData": {"pollIntervalSeconds": 10}},
        successfulRunsHistoryLimit=2,
        estimator={"type": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 1}},
        annotations={"ctrain.dev/trigger": "worse"},
    )
    apply(sandbox, ml_namespace, worse)
    third = wait_for(
        lambda: [n for n in names(runs_of(custom, ml_namespace, "data")) if n > second],
        timeout=60,
        what="the manual run",
    )[0]
    status = wait_finished(custom, ml_namespace, "data", third)
    assert status["lastRunPhase"] == "Succeeded", status.get("message")
    assert status["champion"]["version"] == "2" == champion_alias(s3, model)
    assert "champion v2 kept" in status["message"], status["message"]
    assert "champion v2 kept" in status["lastDecision"]
    assert status["message"].count("accuracy") >= 2  # the candidate's and the champion's

    # history: two successful runs kept, the oldest deleted; its model version stays
    wait_for(
        lambda: (
            names(runs_of(custom, ml_namespace, "data", include_deleting=True)) == [second, third]
        ),
        timeout=30,
        what="the oldest run pruned",
    )
    s3.head_object(Bucket="models", Key=f"ctrain/{model}/versions/1/metadata.json")
    reasons = reasons_until(core, ml_namespace, "data", "ChampionChanged", "ChampionChanged")
    assert reasons.count("ChampionChanged") == 2  # to version 1, then to version 2


def test_forbid_skips_replace_replaces_and_suspend_holds(sandbox, custom, core, ml_namespace):
    # a run whose pod waits for a missing Secret stays active: the cheapest long run
    model, stuck = unique_model(), {"storage": {"bucket": "models", "secretRef": "no-such-secret"}}
    apply(
        sandbox,
        ml_namespace,
        loop("busy", model, template_extra=stuck, annotations={"ctrain.dev/trigger": "1"}),
    )
    [first] = names(wait_runs(custom, ml_namespace, "busy", 1))
    wait_for(
        lambda: status_of(custom, ml_namespace, "busy").get("phase") == "Running",
        timeout=30,
        what="phase Running",
    )

    annotate(sandbox, ml_namespace, "busy", "2")
    wait_for(
        lambda: status_of(custom, ml_namespace, "busy").get("observedTrigger") == "2",
        timeout=30,
        what="the trigger recorded as queued",
    )
    assert names(runs_of(custom, ml_namespace, "busy")) == [first]
    queued = status_of(custom, ml_namespace, "busy")
    assert queued["activeRun"] == first
    assert queued["pendingRun"]["reason"] == "Manual"  # runs once the active run ends
    wait_for(
        lambda: "RunQueued" in [r for r, _ in events_for(core, ml_namespace, "busy")],
        timeout=30,
        what="the RunQueued Event",
    )

    replace = loop(
        "busy",
        model,
        template_extra=stuck,
        annotations={"ctrain.dev/trigger": "3"},
        concurrencyPolicy="Replace",
    )
    apply(sandbox, ml_namespace, replace)
    second = wait_for(
        lambda: (
            (active := status_of(custom, ml_namespace, "busy").get("activeRun")) != first and active
        ),
        timeout=30,
        what="the replacement run",
    )
    wait_for(
        lambda: names(runs_of(custom, ml_namespace, "busy", include_deleting=True)) == [second],
        timeout=30,
        what="the replaced run deleted",
    )
    wait_for(  # Events leave from their own thread: on a busy machine, a moment later
        lambda: "RunReplaced" in [r for r, _ in events_for(core, ml_namespace, "busy")],
        timeout=30,
        what="the RunReplaced Event",
    )

    replace["spec"]["suspend"] = True
    apply(sandbox, ml_namespace, replace)
    suspended = wait_for(
        lambda: (s := status_of(custom, ml_namespace, "busy")).get("phase") == "Suspended" and s,
        timeout=30,
        what="phase Suspended",
    )
    assert condition(suspended, "Ready")["reason"] == "Suspended"
    annotate(sandbox, ml_namespace, "busy", "4")
    settle(8)
    held = status_of(custom, ml_namespace, "busy")
    assert held["observedTrigger"] == "3" and held["activeRun"] == second
    assert names(runs_of(custom, ml_namespace, "busy")) == [second]

    replace["spec"]["suspend"] = False
    replace["metadata"]["annotations"]["ctrain.dev/trigger"] = "4"
    apply(sandbox, ml_namespace, replace)
    wait_for(
        lambda: status_of(custom, ml_namespace, "busy").get("observedTrigger") == "4",
        timeout=30,
        what="the held trigger acted on once resumed",
    )
    third = status_of(custom, ml_namespace, "busy")["activeRun"]
    assert third not in (first, second)
    wait_for(
        lambda: names(runs_of(custom, ml_namespace, "busy", include_deleting=True)) == [third],
        timeout=30,
        what="only the newest run",
    )


def test_drift_starts_one_run_per_episode_and_never_on_the_same_data(
    sandbox, custom, core, ml_namespace
):
    model = unique_model()
    triggers = {"onDrift": {"deployment": "serving", "cooldownSeconds": 0}}
    apply(sandbox, ml_namespace, loop("drifty", model, triggers=triggers))
    missing = wait_for(
        lambda: (s := status_of(custom, ml_namespace, "drifty")).get("conditions") and s,
        timeout=30,
        what="status",
    )
    ready = condition(missing, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "DeploymentNotFound")
    assert "spec.triggers.onDrift.deployment" in ready["message"]

    deployment = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "serving"},
        "spec": {"model": model, "version": "champion", "monitoring": {"drift": {"enabled": True}}},
    }
    apply(sandbox, ml_namespace, deployment)
    waiting = wait_for(
        lambda: (
            (s := status_of(custom, ml_namespace, "drifty"))
            and condition(s, "Ready")["reason"] == "NoChampion"
            and s
        ),
        timeout=30,
        what="no longer DeploymentNotFound once the ModelDeployment exists",
    )
    # Not Ready before the model has a champion, and reconciling towards one (kstatus).
    assert condition(waiting, "Ready")["status"] == "False"
    assert condition(waiting, "Reconciling")["status"] == "True"
    assert condition(waiting, "Stalled")["status"] == "False"
    assert not runs_of(custom, ml_namespace, "drifty")

    def report_drift(score: float, detected: bool = True) -> None:
        drift = {
            "score": score,
            "detected": detected,
            "samples": 800,
            "features": {"petal_length": score},
            "checkedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        custom.patch_namespaced_custom_object_status(
            "ctrain.dev",
            "v1alpha1",
            ml_namespace,
            "modeldeployments",
            "serving",
            {"status": {"drift": drift}},
        )

    report_drift(0.31)
    [run] = wait_runs(custom, ml_namespace, "drifty", 1, timeout=30)
    assert run["metadata"]["labels"]["ctrain.dev/trigger-reason"] == "Drift"
    status = status_of(custom, ml_namespace, "drifty")
    assert status["lastTriggered"]["reason"] == "Drift"
    assert "score 0.3100" in status["lastTriggered"]["detail"]
    assert status["lastDriftTriggerTime"]

    report_drift(0.35)  # the same episode: no cooldown, and still one run
    settle(10)
    assert names(runs_of(custom, ml_namespace, "drifty")) == [run["metadata"]["name"]]
    assert status_of(custom, ml_namespace, "drifty")["driftEpisode"]

    report_drift(0.05, detected=False)  # the episode ends
    wait_for(
        lambda: "driftEpisode" not in status_of(custom, ml_namespace, "drifty"),
        timeout=30,
        what="the drift episode ended",
    )
    report_drift(0.4)  # a new episode, but on the data the first run trained on
    skipped = wait_for(
        lambda: (
            (s := status_of(custom, ml_namespace, "drifty")["lastTriggered"]).get("skipped") and s
        ),
        timeout=30,
        what="the drift trigger skipped",
    )
    assert skipped["skipped"] == "NoNewData" and skipped["reason"] == "Drift"
    assert names(runs_of(custom, ml_namespace, "drifty")) == [run["metadata"]["name"]]
    assert "NoNewData" in reasons_until(core, ml_namespace, "drifty", "NoNewData")


def test_forbid_remembers_new_data_seen_during_a_run_and_trains_it_once_after(
    sandbox, custom, core, s3, ml_namespace
):
    model = unique_model("queued")
    key = f"{model}/iris.csv"
    s3.put_object(Bucket="datasets", Key=key, Body=iris_csv())
    # Several hundred boosting rounds: a run that lasts while the data changes under it.
    slow = {"type": "sklearn.ensemble.GradientBoostingClassifier", "params": {"n_estimators": 400}}
    manifest = loop(
        "queue",
        model,
        uri=f"s3://datasets/{key}",
        triggers={"onNewData": {"pollIntervalSeconds": 10}},
        estimator=slow,
    )
    apply(sandbox, ml_namespace, manifest)
    [first] = names(wait_runs(custom, ml_namespace, "queue", 1, timeout=60))
    trained_on = status_of(custom, ml_namespace, "queue")["dataVersion"]

    s3.put_object(Bucket="datasets", Key=key, Body=iris_csv(noise=True))  # changes twice
    s3.put_object(Bucket="datasets", Key=key, Body=iris_csv() + b"5.0,3.4,1.5,0.2,setosa\n")
    queued = wait_for(
        lambda: (s := status_of(custom, ml_namespace, "queue")).get("pendingRun") and s,
        timeout=60,
        what="the new data queued behind the active run",
    )
    assert queued["activeRun"] == first, "the first run ended before the change was seen"
    assert queued["pendingRun"]["reason"] == "NewData"
    assert queued["dataVersion"] == trained_on  # not consumed while the run is active

    wait_finished(custom, ml_namespace, "queue", first, timeout=300)
    [_, second] = names(wait_runs(custom, ml_namespace, "queue", 2, timeout=60))
    status = status_of(custom, ml_namespace, "queue")
    assert status["lastTriggered"]["reason"] == "NewData"
    assert status["dataVersion"] != trained_on
    assert "pendingRun" not in status
    newest = s3.head_object(Bucket="datasets", Key=key)["ETag"].strip('"')
    assert newest in status["dataVersion"]  # the newest data, not the one in between
    wait_finished(custom, ml_namespace, "queue", second, timeout=300)
    settle(12)  # a poll interval and more: nothing else is pending
    assert names(runs_of(custom, ml_namespace, "queue")) == [first, second]
    assert [r for r, _ in events_for(core, ml_namespace, "queue")].count("RunQueued") == 1


@pytest.mark.parametrize(
    ("triggers", "field"),
    [
        ({"schedule": "61 * * * *"}, "spec.triggers.schedule"),
        ({"schedule": "0 3 * * *", "timeZone": "Mars/Olympus_Mons"}, "spec.triggers.timeZone"),
    ],
)
def test_invalid_trigger_is_reported_with_its_field(
    sandbox, custom, core, ml_namespace, triggers, field
):
    apply(sandbox, ml_namespace, loop("invalid", unique_model(), triggers=triggers))
    status = wait_for(
        lambda: (s := status_of(custom, ml_namespace, "invalid")).get("conditions") and s,
        timeout=30,
        what="status",
    )
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert field in ready["message"] and field in status["message"]
    events_until(
        core, ml_namespace, "invalid",
        lambda events: any(r == "InvalidSpec" and field in m for r, m in events),
    )  # fmt: skip
    assert not runs_of(custom, ml_namespace, "invalid")


def test_operator_restart_never_duplicates_a_run(sandbox, custom, operator, ml_namespace):
    apply(
        sandbox,
        ml_namespace,
        loop("restart", unique_model(), annotations={"ctrain.dev/trigger": "1"}),
    )
    [run] = names(wait_runs(custom, ml_namespace, "restart", 1))
    operator.kill()
    operator.start()
    wait_finished(custom, ml_namespace, "restart", run)
    operator.kill()
    operator.start()
    settle(8)
    assert names(runs_of(custom, ml_namespace, "restart")) == [run]
    assert status_of(custom, ml_namespace, "restart")["observedTrigger"] == "1"
