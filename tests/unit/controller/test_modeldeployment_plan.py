"""The ModelDeployment rollout state machine and the serving children's builders (pure)."""

import dataclasses
import datetime
from typing import Any

import pytest

from ctrain.api import ModelDeploymentSpec, ModelDeploymentStatus
from ctrain.api.contracts import DriftReport
from ctrain.controller.config import OperatorConfig
from ctrain.controller.modeldeployment import plan as planning
from ctrain.controller.modeldeployment.analysis import Counts
from ctrain.controller.modeldeployment.builders import VERSION_LABEL, build_deployment
from ctrain.controller.modeldeployment.plan import (
    CANARY_CHECK_SECONDS,
    Observed,
    Track,
    canary_replicas,
    effective_weight,
)
from ctrain.controller.modeldeployment.probe import PodCounts, combine_drift, request_counts
from ctrain.controller.runtime.status import serialise

pytestmark = pytest.mark.unit
NOW = datetime.datetime(2026, 11, 22, 12, 0, 0, tzinfo=datetime.UTC)
BODY = {"apiVersion": "ctrain.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": "iris", "namespace": "ns", "uid": "u1"}}  # fmt: skip


@dataclasses.dataclass
class Planned:
    """A plan with its status as the runtime writes it (camelCase, no empty fields)."""

    stable: tuple[str, int] | None
    canary: tuple[str, int] | None
    events: list[tuple[str, str, bool]]
    recheck: float | None
    status: dict[str, Any]
    demote: tuple[str, str] | None = None


HEALTHY = Counts(requests=100, errors=1)  # the canary's window: 1% server errors
STABLE = Counts(requests=400, errors=2)  # the stable track's, over the same window


def plan(spec: ModelDeploymentSpec, old: dict, seen: Observed, generation: int) -> Planned:
    result = planning.plan(spec, ModelDeploymentStatus.parse(old), seen, generation)
    return Planned(
        result.stable,
        result.canary,
        result.events,
        result.recheck,
        serialise(result.status),
        result.demote,
    )


def spec(**overrides) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.parse({"model": "iris", "replicas": 2, **overrides})


def canary_spec(**canary) -> ModelDeploymentSpec:
    settings = {"weight": 20, "promoteAfterSeconds": 60, "maxErrorRate": 0.05, **canary}
    return spec(strategy={"type": "Canary", "canary": settings})


def track(version: str, replicas: int = 2, ready: int | None = None, complete: bool = True,
          exceeded: bool = False) -> Track:  # fmt: skip
    ready = replicas if ready is None else ready
    return Track(version, replicas, ready, complete, exceeded)


def at(seconds: float) -> datetime.datetime:
    return NOW + datetime.timedelta(seconds=seconds)


def condition(status: dict, kind: str) -> tuple[str, str]:
    found = next(c for c in status["conditions"] if c["type"] == kind)
    return found["status"], found["reason"]


def test_first_deploy_creates_the_stable_track():
    result = plan(spec(), {}, Observed("1", None, None, None, now=NOW), generation=1)
    assert result.stable == ("1", 2)
    assert result.canary is None
    assert result.status["phase"] == "Progressing"
    assert [e[0] for e in result.events] == ["RollingOut"]


def test_no_version_yet_is_pending_with_the_reason():
    result = plan(
        spec(), {}, Observed(None, "VersionNotFound: no champion", None, None, now=NOW), 1
    )
    assert result.stable is None
    assert result.status["phase"] == "Pending"
    assert "no champion" in result.status["message"]
    assert condition(result.status, "Ready")[0] == "False"


def test_completed_rollout_is_available_and_records_the_version():
    result = plan(spec(), {}, Observed("1", None, track("1"), None, now=NOW), 1)
    assert result.status["currentVersion"] == "1"
    assert result.status["phase"] == "Available"
    assert condition(result.status, "Ready") == ("True", "RolloutComplete")
    assert condition(result.status, "Progressing")[0] == "False"
    again = plan(spec(), result.status, Observed("1", None, track("1"), None, now=NOW), 1)
    assert again.events == []  # a settled object produces no Events
    assert again.recheck is None  # and needs no timer
    assert again.status == result.status  # nor any write


def test_new_champion_rolls_the_stable_template():
    old = {"currentVersion": "1"}
    result = plan(spec(), old, Observed("2", None, track("1"), None, now=NOW), 1)
    assert result.stable == ("2", 2)
    assert result.status["previousVersion"] == "1"
    assert result.status["phase"] == "Progressing"
    done = plan(spec(), result.status, Observed("2", None, track("2"), None, now=at(30)), 1)
    assert done.status["currentVersion"] == "2"
    assert done.status["phase"] == "Available"


def test_rollout_past_its_deadline_rolls_back_and_holds():
    old = {"currentVersion": "1", "previousVersion": "1"}
    stuck = track("2", ready=1, complete=False, exceeded=True)
    result = plan(spec(), old, Observed("2", None, stuck, None, now=NOW), 1)
    assert result.stable == ("1", 2)
    assert result.status["rolledBackVersion"] == "2"
    assert [e[0] for e in result.events] == ["RolledBack"]
    # The rolled-back version is not retried while it is still the one requested.
    back = plan(spec(), result.status, Observed("2", None, track("1"), None, now=at(10)), 1)
    assert back.stable == ("1", 2)
    assert back.status["phase"] == "Degraded"
    assert condition(back.status, "Degraded") == ("True", "RolledBack")
    assert condition(back.status, "Ready")[0] == "True"  # still serving version 1
    # A newer version is tried again.
    newer = plan(spec(), back.status, Observed("3", None, track("1"), None, now=at(20)), 1)
    assert newer.stable == ("3", 2)
    assert "rolledBackVersion" not in newer.status


def test_canary_runs_beside_stable_then_promotes():
    old = {"currentVersion": "1"}
    stable_pods, canary_pods = canary_replicas(2, 20)
    first = plan(canary_spec(), old, Observed("2", None, track("1"), None, now=NOW), 1)
    assert first.stable == ("1", stable_pods)
    assert first.canary == ("2", canary_pods)
    assert first.status["canaryVersion"] == "2"
    assert first.recheck == pytest.approx(300 + 1)  # only the deadline needs a timer
    ready = Observed(
        "2", None, track("1", stable_pods), track("2", canary_pods), HEALTHY, STABLE, now=at(5)
    )
    waiting = plan(canary_spec(), first.status, ready, 1)
    assert waiting.canary == ("2", canary_pods)
    assert waiting.status["canaryStartTime"] == "2026-11-22T12:00:05Z"
    assert waiting.recheck == CANARY_CHECK_SECONDS  # its counts are read again soon
    assert waiting.status["canaryAnalysis"]["verdict"] == "Healthy"
    later = Observed(
        "2", None, track("1", stable_pods), track("2", canary_pods), Counts(300, 2), STABLE,
        now=at(70),
    )  # fmt: skip
    promoted = plan(canary_spec(), waiting.status, later, 1)
    assert promoted.stable == ("2", 2)
    assert [e[0] for e in promoted.events] == ["CanaryPromoted"]
    assert promoted.demote is None
    assert promoted.recheck is None  # the rollout's Deployment events drive it from here
    rolled = Observed("2", None, track("2"), track("2", canary_pods), now=at(80))
    finished = plan(canary_spec(), promoted.status, rolled, 1)
    assert finished.canary is None
    assert finished.status["currentVersion"] == "2"
    assert "canaryVersion" not in finished.status


def test_canary_with_too_many_errors_is_removed():
    old = {"currentVersion": "1", "canaryVersion": "2", "rolloutStartTime": "2026-11-22T12:00:00Z"}
    stable_pods, canary_pods = canary_replicas(2, 20)
    bad = Observed(
        "2", None, track("1", stable_pods), track("2", canary_pods), Counts(100, 40), STABLE,
        now=at(10),
    )  # fmt: skip
    result = plan(canary_spec(), old, bad, 1)
    assert result.canary is None
    assert result.stable == ("1", 2)
    assert result.status["rolledBackVersion"] == "2"
    assert [e[0] for e in result.events] == ["CanaryFailed"]
    assert "40 server errors in 100 requests" in result.events[0][1]
    assert result.demote is not None and result.demote[0] == "2"  # the model's failure
    again = plan(canary_spec(), {**old, "rejectedVersion": "2"}, bad, 1)
    assert again.demote is None  # rejected once


def canary_ready(canary: Counts, stable: Counts = STABLE, seconds: float = 10) -> Observed:
    stable_pods, canary_pods = canary_replicas(2, 20)
    return Observed(
        "2", None, track("1", stable_pods), track("2", canary_pods), canary, stable,
        now=at(seconds),
    )  # fmt: skip


JUDGED = {"currentVersion": "1", "canaryVersion": "2", "rolloutStartTime": "2026-11-22T12:00:00Z",
          "canaryStartTime": "2026-11-22T12:00:05Z"}  # fmt: skip


def test_a_canary_without_traffic_waits_and_is_never_promoted_by_time_alone():
    idle = plan(canary_spec(minRequests=100), JUDGED, canary_ready(Counts(), seconds=200), 1)
    assert idle.stable == ("1", canary_replicas(2, 20)[0])  # not promoted after 60 s
    assert idle.canary is not None and not idle.events
    assert idle.status["canaryAnalysis"]["verdict"] == "WaitingForTraffic"
    assert condition(idle.status, "Progressing") == ("True", "CanaryWaitingForTraffic")
    assert "0 of the 100 requests" in idle.status["message"]
    busy = plan(canary_spec(minRequests=100), JUDGED, canary_ready(HEALTHY, seconds=201), 1)
    assert busy.stable == ("2", 2)
    assert [e[0] for e in busy.events] == ["CanaryPromoted"]


def test_no_verdict_past_the_analysis_deadline_rolls_back_without_blaming_the_model():
    # promoteAfterSeconds 60 + progressDeadlineSeconds 300 after the canary became ready
    late = plan(canary_spec(), JUDGED, canary_ready(Counts(3), seconds=5 + 360), 1)
    assert late.canary is None
    assert late.status["rolledBackVersion"] == "2"
    assert [e[0] for e in late.events] == ["CanaryInconclusive"]
    assert late.demote is None


def test_an_unscrapeable_canary_pod_is_inconclusive_never_a_pass():
    blind = Counts(requests=500, errors=0, unscraped=1)
    result = plan(canary_spec(), JUDGED, canary_ready(blind, seconds=300), 1)
    assert result.stable == ("1", canary_replicas(2, 20)[0])
    assert result.status["canaryAnalysis"]["verdict"] == "Inconclusive"
    assert condition(result.status, "Progressing") == ("True", "CanaryInconclusive")


def test_a_restarted_canary_pod_fails_the_canary_and_blames_the_model():
    result = plan(canary_spec(), JUDGED, canary_ready(Counts(500, 0, restarts=1)), 1)
    assert [e[0] for e in result.events] == ["CanaryFailed"]
    assert result.demote == ("2", result.status["message"], True)  # proven by the analysis


def test_a_canary_never_ready_blames_the_model_unless_it_was_never_scheduled():
    old = {"currentVersion": "1", "canaryVersion": "2", "rolloutStartTime": "2026-11-22T12:00:00Z"}
    stuck = track("2", 1, ready=0, complete=False)
    result = plan(canary_spec(), old, Observed("2", None, track("1"), stuck, now=at(301)), 1)
    assert result.demote is not None and "did not become ready" in result.demote[1]
    assert result.demote[2] is False  # the reconciler asks the pods for their word first
    unplaced = Observed("2", None, track("1"), stuck, now=at(301), unscheduled=frozenset({"2"}))
    assert plan(canary_spec(), old, unplaced, 1).demote is None


def test_a_rolling_update_past_its_deadline_blames_the_model_once():
    old = {
        "currentVersion": "1",
        "previousVersion": "1",
        "rolloutStartTime": "2026-11-22T12:00:00Z",
    }
    stuck = Observed("2", None, track("2", complete=False, exceeded=True), None, now=at(400))
    result = plan(spec(), old, stuck, 1)
    assert result.stable == ("1", 2)
    assert result.demote is not None and result.demote[0] == "2"


def test_canary_that_never_gets_ready_is_removed_after_the_deadline():
    old = {"currentVersion": "1", "canaryVersion": "2", "rolloutStartTime": "2026-11-22T12:00:00Z"}
    stuck = Observed("2", None, track("1"), track("2", 1, ready=0, complete=False), now=at(301))
    result = plan(canary_spec(), old, stuck, 1)
    assert result.canary is None
    assert result.status["rolledBackVersion"] == "2"


@pytest.mark.parametrize(
    ("replicas", "weight", "share"),
    [(2, 20, 20), (4, 25, 25), (1, 50, 50), (3, 10, 14), (10, 10, 10)],
)
def test_canary_replicas_approach_the_weight(replicas, weight, share):
    stable_pods, canary_pods = canary_replicas(replicas, weight)
    assert canary_pods >= 1
    assert stable_pods >= replicas
    assert effective_weight(stable_pods, canary_pods) == share


def test_deployment_is_restricted_versioned_and_zero_downtime():
    manifest = build_deployment(BODY, spec(), OperatorConfig(), track="stable", version="7",
                                replicas=2)  # fmt: skip
    pod = manifest["spec"]["template"]
    assert pod["metadata"]["labels"][VERSION_LABEL] == "7"
    assert manifest["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = pod["spec"]["containers"][0]
    assert container["args"][:4] == ["--model", "iris", "--version", "7"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    secret_refs = [
        e for e in container["env"] if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
    ]
    assert {e["name"] for e in secret_refs} == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "u1"
    other = build_deployment(
        BODY, spec(), OperatorConfig(), track="stable", version="8", replicas=2
    )
    key = "ctrain.dev/spec-hash"
    assert other["metadata"]["annotations"][key] != manifest["metadata"]["annotations"][key]


def test_request_counts_leave_client_errors_out_and_count_server_errors():
    text = (
        "# TYPE ctrain_serving_requests counter\n"
        'ctrain_serving_requests_total{route="infer",code="200"} 90.0\n'
        'ctrain_serving_requests_total{route="infer",code="400"} 8.0\n'
        'ctrain_serving_requests_total{route="infer",code="500"} 2.0\n'
        'ctrain_serving_requests_total{route="ready",code="503"} 50.0\n'
        "# TYPE ctrain_serving_request_duration_seconds histogram\n"
        'ctrain_serving_request_duration_seconds_bucket{route="infer",le="0.01"} 95.0\n'
        'ctrain_serving_request_duration_seconds_bucket{route="infer",le="+Inf"} 100.0\n'
        'ctrain_serving_request_duration_seconds_count{route="infer"} 100.0\n'
        'ctrain_serving_request_duration_seconds_sum{route="infer"} 0.5\n'
    )
    counts = request_counts(text)
    assert counts == PodCounts(92, 2, {0.01: 95.0, float("inf"): 100.0})  # 4xx left out


# What every pod's /drift says besides its numbers.
POD = {"model": "iris", "version": "1", "reference": None, "computedAt": "2026-11-22T12:00:00Z"}


def test_drift_from_several_pods_is_sample_weighted():
    reports = [
        DriftReport.parse({**POD, "samples": 300, "score": 0.1, "features": {"a": 0.1}}),
        DriftReport.parse({**POD, "samples": 100, "score": 0.5, "features": {"a": 0.5}}),
        DriftReport.parse({**POD, "samples": 0, "score": None, "features": {}}),
    ]
    combined = combine_drift(reports, threshold=0.15, min_samples=400)
    assert combined["samples"] == 400
    assert combined["score"] == pytest.approx(0.2)
    assert combined["features"] == {"a": pytest.approx(0.2)}
    assert combined["detected"] is True
    assert combine_drift(reports, threshold=0.15, min_samples=500)["detected"] is False


def test_a_first_rollout_that_stays_failed_is_blamed_on_the_first_pass_only():
    stuck = Observed("1", None, track("1", complete=False, exceeded=True), None, now=at(400))
    first = plan(spec(), {}, stuck, 1)
    assert first.status["rolledBackVersion"] == "1" and first.demote is not None
    again = plan(spec(), first.status, stuck, 1)
    assert again.demote is None  # the pods were asked once; no scrape on every pass
