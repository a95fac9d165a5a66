"""The ContinuousTraining reconciler's API calls against the recording fake, with the
registry and datasets in a real S3 API over HTTP (moto's server)."""

from datetime import timedelta

import pytest
from fakes import Harness

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.controller.config import OperatorConfig, StorageGrant
from ctrain.controller.continuoustraining.builders import CONTINUOUS_LABEL
from ctrain.controller.kube import CONTINUOUSTRAININGS, MODELDEPLOYMENTS, TRAININGJOBS
from ctrain.controller.runtime.store import ObjectRef
from ctrain.registry import Registry

pytest_plugins = ["s3_fixtures"]
pytestmark = pytest.mark.unit
NS = "ml"
LOOP = ObjectRef("ContinuousTraining", NS, "loop")


def loop(triggers: dict | None = None, annotations: dict | None = None, **spec: object) -> dict:
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "ContinuousTraining",
        "metadata": {"name": "loop", "namespace": NS, "annotations": annotations or {}},
        "spec": {
            "template": {
                "spec": {
                    "model": "iris",
                    "dataset": {"uri": "builtin://iris"},
                    "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
                }
            },
            "triggers": triggers or {},
            **spec,
        },
    }


@pytest.fixture
def harness(moto_endpoint: str, s3_env: dict[str, str], bucket: str) -> Harness:
    return Harness(
        OperatorConfig(
            s3_endpoint=moto_endpoint,
            default_bucket=bucket,
            s3_allow_http=True,  # moto on localhost
            s3_allowed=(StorageGrant(moto_endpoint, ("*",)),),
        )
    )


def runs(harness: Harness) -> list[dict]:
    return [b for (kind, _, _), b in sorted(harness.api.objects.items()) if kind == "TrainingJob"]


def test_a_manual_trigger_records_the_intent_then_creates_one_run(harness: Harness) -> None:
    harness.api.put(CONTINUOUSTRAININGS, loop())
    harness.drain()
    assert harness.api.find(CONTINUOUSTRAININGS, NS, "loop")["status"]["phase"] == "Idle"
    harness.api.reset()
    body = harness.api.find(CONTINUOUSTRAININGS, NS, "loop")
    body["metadata"]["annotations"] = {"ctrain.dev/trigger": "1"}
    harness.api.put(CONTINUOUSTRAININGS, body)
    harness.drain()
    writes = harness.api.writes()
    assert writes[:3] == [
        ("patch_status", "ContinuousTraining", "loop"),  # activeRun, before the run exists
        ("create", "TrainingJob", "loop-20260301-100030"),
        ("patch_status", "ContinuousTraining", "loop"),
    ]
    assert ("event", "Triggered") in writes
    [run] = runs(harness)
    assert run["metadata"]["labels"][CONTINUOUS_LABEL] == "loop"
    status = harness.api.find(CONTINUOUSTRAININGS, NS, "loop")["status"]
    assert (status["activeRun"], status["observedTrigger"]) == (run["metadata"]["name"], "1")
    harness.api.reset()
    harness.api.put(CONTINUOUSTRAININGS, harness.api.find(CONTINUOUSTRAININGS, NS, "loop"))
    harness.drain()
    assert harness.api.writes() == []  # the same annotation again starts nothing


def test_a_finished_run_is_recorded_with_the_champion_it_made(
    harness: Harness, registry: Registry
) -> None:
    harness.api.put(CONTINUOUSTRAININGS, loop(annotations={"ctrain.dev/trigger": "1"}))
    harness.drain()
    [run] = runs(harness)
    version = registry.reserve_version("iris")
    registry.publish(
        "iris", version, b"m", ModelMetadata(metrics={"accuracy": 0.9}), Reference(rows=1)
    )
    registry.set_champion("iris", version, "the run promoted it")
    run["status"] = {"phase": "Succeeded", "modelVersion": "1", "promoted": True,
                     "metrics": {"accuracy": 0.9}, "keyMetric": "accuracy=0.9000"}  # fmt: skip
    harness.api.reset()
    harness.api.put(TRAININGJOBS, run)  # the run's event enqueues its loop
    harness.drain()
    status = harness.api.find(CONTINUOUSTRAININGS, NS, "loop")["status"]
    assert status["lastRun"] == run["metadata"]["name"] and "activeRun" not in status
    # read in the same pass, not at the storage watch's next interval
    assert status["champion"] == {"version": "1", "metrics": {"accuracy": 0.9}}
    reasons = [call[1] for call in harness.api.writes() if call[0] == "event"]
    assert "RunSucceeded" in reasons and "ChampionChanged" in reasons


def test_a_schedule_asks_to_be_looked_at_on_its_next_slot(harness: Harness) -> None:
    harness.api.put(CONTINUOUSTRAININGS, loop({"schedule": "0 3 * * *"}))
    harness.drain()
    due = harness.runtime.loops["ContinuousTraining"].queue.due_in(LOOP)
    # 10:00:30 -> 03:00 the next day, a second late
    expected = timedelta(hours=16, minutes=59, seconds=31).total_seconds()
    assert due == pytest.approx(expected, abs=5)


def test_an_active_run_missing_from_the_cache_is_asked_for_before_it_counts_as_deleted(
    harness: Harness,
) -> None:
    harness.api.put(CONTINUOUSTRAININGS, loop(annotations={"ctrain.dev/trigger": "1"}))
    harness.drain()
    [run] = runs(harness)
    run["status"] = {"phase": "Running"}
    harness.api.put(TRAININGJOBS, run)
    harness.drain()
    harness.context.store(TRAININGJOBS).remove(NS, run["metadata"]["name"])  # a cold cache
    harness.api.reset()
    harness.runtime.enqueue(LOOP)
    harness.drain()
    assert harness.api.calls[0] == ("list", "TrainingJob", f"{CONTINUOUS_LABEL}=loop")
    status = harness.api.find(CONTINUOUSTRAININGS, NS, "loop")["status"]
    assert status["activeRun"] == run["metadata"]["name"]
    assert not [c for c in harness.api.calls if c == ("event", "RunDeleted")]


def test_a_change_of_the_watched_modeldeployment_enqueues_the_loop(harness: Harness) -> None:
    triggers = {"onDrift": {"deployment": "serving", "cooldownSeconds": 3600}}
    harness.api.put(CONTINUOUSTRAININGS, loop(triggers))
    harness.drain()
    ready = next(
        c
        for c in harness.api.find(CONTINUOUSTRAININGS, NS, "loop")["status"]["conditions"]
        if c["type"] == "Ready"
    )
    assert ready["reason"] == "DeploymentNotFound"
    serving = {
        "metadata": {"name": "serving", "namespace": NS},
        "spec": {"model": "iris", "monitoring": {"drift": {"enabled": True}}},
        "status": {"drift": {"score": 0.4, "detected": True, "samples": 900}},
    }
    harness.api.put(MODELDEPLOYMENTS, serving)  # the loop follows it: this event enqueues it
    harness.drain()
    [run] = runs(harness)
    assert run["metadata"]["labels"]["ctrain.dev/trigger-reason"] == "Drift"
    due = harness.runtime.loops["ContinuousTraining"].queue.due_in(LOOP)
    assert due == pytest.approx(3601, abs=5)  # the cooldown's end, nothing sooner
