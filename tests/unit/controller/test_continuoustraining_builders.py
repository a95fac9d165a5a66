"""Pure pieces of the ContinuousTraining controller: run manifests, names, history, status."""

from datetime import UTC, datetime
from typing import Any

import pytest
from test_argocd_health import ARGOCD, GROUP, LuaHealth

from ctrain.api import ContinuousTraining, ContinuousTrainingStatus, Reason
from ctrain.controller.continuoustraining.builders import (
    CONTINUOUS_LABEL,
    MESSAGE_ANNOTATION,
    REASON_LABEL,
    Problem,
    Run,
    build_run,
    copied,
    label_value,
    last_outcome,
    outcome,
    owned_runs,
    run_name,
    runs_to_prune,
    summarize,
    track,
)
from ctrain.controller.runtime.status import serialise

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 10, 0, 30, tzinfo=UTC)
AT = "2026-03-01T10:00:30Z"
UID = "0b1c2d3e-loop"
LOOP = {
    "apiVersion": "ctrain.dev/v1alpha1",
    "kind": "ContinuousTraining",
    "metadata": {"name": "iris", "namespace": "ml", "uid": UID, "generation": 3},
}
TEMPLATE: dict[str, Any] = {
    "metadata": {
        "labels": {
            "team": "fraud",
            "app.kubernetes.io/instance": "ml-models",
            "argocd.argoproj.io/instance": "ml-models",
            CONTINUOUS_LABEL: "spoofed",
        },
        "annotations": {
            "owner": "ana",
            "argocd.argoproj.io/sync-options": "Prune=false",
            "argocd.argoproj.io/tracking-id": "ml-models:ctrain.dev/ContinuousTraining:ml/iris",
        },
    },
    "spec": {
        "model": "iris",
        "dataset": {"uri": "builtin://iris"},
        "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
    },
}


def tj(name: str, phase: str | None, *, created: str = "", done: str = "", **extra: Any) -> dict:
    status: dict[str, Any] = {"phase": phase} if phase else {}
    if done:
        status["completionTime"] = done
    status.update(extra)
    meta: dict[str, Any] = {
        "name": name,
        "creationTimestamp": created or "2026-03-01T10:00:00Z",
        "ownerReferences": [{"uid": UID, "controller": True, "kind": "ContinuousTraining"}],
    }
    return {"metadata": meta, "status": status}


def runs(*bodies: dict) -> list[Run]:
    return owned_runs(list(bodies), UID)


# --- names and manifests -----------------------------------------------------------------


def test_label_value_fits_and_is_deterministic() -> None:
    assert label_value("iris") == "iris"
    long = "a" * 80
    assert len(label_value(long)) <= 63
    assert label_value(long) == label_value(long) != label_value("a" * 79 + "b")


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ((), "iris-20260301-100030"),
        (("iris-20260301-100030",), "iris-20260301-100031"),
        (("iris-20260301-100030", "iris-20260301-100031"), "iris-20260301-100032"),
    ],
)
def test_run_name_from_the_trigger_time(taken: tuple[str, ...], expected: str) -> None:
    assert run_name("iris", T0, set(taken)) == expected


def test_run_name_of_a_long_loop_stays_a_valid_label_value() -> None:
    name = run_name("x" * 200, T0, set())
    assert len(name) <= 63 and name.endswith("-20260301-100030")
    assert run_name("x" * 200, T0, set()) == name


def test_copied_drops_what_gitops_tools_claim_objects_by() -> None:
    assert copied(TEMPLATE["metadata"]["labels"]) == {"team": "fraud", CONTINUOUS_LABEL: "spoofed"}
    assert copied(TEMPLATE["metadata"]["annotations"]) == {"owner": "ana"}
    assert copied(None) == {}


def test_build_run() -> None:
    manifest = build_run(
        LOOP,
        TEMPLATE,
        "iris-20260301-100030",
        reason="Manual",
        detail="ctrain.dev/trigger=2",
        triggered_at=AT,
    )
    meta = manifest["metadata"]
    assert manifest["apiVersion"] == "ctrain.dev/v1alpha1" and manifest["kind"] == "TrainingJob"
    assert (meta["name"], meta["namespace"]) == ("iris-20260301-100030", "ml")
    assert meta["labels"] == {
        "team": "fraud",
        "app.kubernetes.io/managed-by": "ctrain",
        CONTINUOUS_LABEL: "iris",  # ours wins over the template's
        REASON_LABEL: "Manual",
    }
    assert meta["annotations"] == {
        "owner": "ana",
        MESSAGE_ANNOTATION: "ctrain.dev/trigger=2",
        "ctrain.dev/triggered-at": AT,
    }
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "ctrain.dev/v1alpha1",
            "kind": "ContinuousTraining",
            "name": "iris",
            "uid": UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert manifest["spec"] == TEMPLATE["spec"]
    assert manifest["spec"] is not TEMPLATE["spec"]


def test_owned_runs_need_the_loop_as_controller() -> None:
    mine = tj("mine", "Running")
    foreign = tj("foreign", "Running")
    foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    not_controller = tj("adopted", "Running")
    not_controller["metadata"]["ownerReferences"][0]["controller"] = False
    assert [r.name for r in runs(mine, foreign, not_controller)] == ["mine"]


# --- following runs ----------------------------------------------------------------------

RUNNING = {"type": "Running", "status": "True", "reason": "RunActive", "lastTransitionTime": AT}
CREATING = {"type": "Running", "status": "True", "reason": "Triggered", "lastTransitionTime": AT}


@pytest.mark.parametrize(
    ("status", "bodies", "expected"),
    [
        pytest.param({}, [], {}, id="nothing"),
        pytest.param(
            {"activeRun": "a", "conditions": [RUNNING]},
            [tj("a", "Running")],
            {"active": "a"},
            id="active-still-running",
        ),
        pytest.param(
            {"activeRun": "a", "conditions": [RUNNING]},
            [tj("a", "Succeeded")],
            {"finished": "a"},
            id="active-finished",
        ),
        pytest.param(
            {"activeRun": "a", "conditions": [CREATING]},
            [],
            {"active": "a", "create_pending": True},
            id="crashed-before-creating",
        ),
        pytest.param(
            {"activeRun": "a", "conditions": [RUNNING]},
            [],
            {"vanished": "a"},
            id="deleted-by-someone",
        ),
        pytest.param(
            {},
            [tj("old", "Pending", created="2026-03-01T09:00:00Z"), tj("new", "Running")],
            {"active": "new", "others": ("old",)},
            id="status-lost-adopts-newest",
        ),
        pytest.param(
            {"activeRun": "b", "conditions": [RUNNING]},
            [tj("a", "Running"), tj("b", "Pending"), tj("c", "Failed")],
            {"active": "b", "others": ("a",)},
            id="replaced-run-still-there",
        ),
        pytest.param(
            {"activeRun": "b", "conditions": [RUNNING]},
            [
                {
                    **tj("a", "Running"),
                    "metadata": {**tj("a", None)["metadata"], "deletionTimestamp": AT},
                },
                tj("b", "Pending"),
            ],
            {"active": "b"},
            id="deleting-run-ignored",
        ),
    ],
)
def test_track(status: dict, bodies: list[dict], expected: dict[str, Any]) -> None:
    result = track(ContinuousTrainingStatus.parse(status), runs(*bodies))
    finished = result.finished.name if result.finished else None
    got = {
        "active": result.active,
        "finished": finished,
        "vanished": result.vanished,
        "create_pending": result.create_pending,
        "others": result.others,
    }
    defaults = {"active": None, "finished": None, "vanished": None, "create_pending": False}
    assert got == {**defaults, "others": (), **expected}


# --- outcomes ----------------------------------------------------------------------------

PROMOTED: dict[str, Any] = {
    "modelVersion": "3",
    "metrics": {"accuracy": 0.9667, "f1_macro": 0.96},
    "keyMetric": "accuracy=0.9667",
    "baseline": {"version": "2", "metrics": {"accuracy": 0.9, "f1_macro": 0.89}},
    "blessed": True,
    "promoted": True,
    "decision": "promoted: accuracy 0.9667 beats champion v2 0.9000",
}
KEPT: dict[str, Any] = {
    "modelVersion": "4",
    "metrics": {"accuracy": 0.6, "f1_macro": 0.5},
    "keyMetric": "accuracy=0.6000",
    "baseline": {"version": "3", "metrics": {"accuracy": 0.9667}},
    "blessed": False,
    "promoted": False,
    "decision": "kept champion v3: accuracy 0.6000 does not beat 0.9667 (minImprovement 0.0)",
}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (
            tj("r3", "Succeeded", **PROMOTED),
            "run r3 succeeded: version 3 promoted to champion (accuracy 0.9667 vs champion v2 "
            "0.9000); promoted: accuracy 0.9667 beats champion v2 0.9000",
        ),
        (
            tj("r4", "Succeeded", **KEPT),
            "run r4 succeeded: version 4 not blessed, champion v3 kept (accuracy 0.6000 vs "
            "champion v3 0.9667); kept champion v3: accuracy 0.6000 does not beat 0.9667 "
            "(minImprovement 0.0)",
        ),
        (
            tj(
                "r1",
                "Succeeded",
                modelVersion="1",
                metrics={"r2": 0.8},
                keyMetric="r2=0.8000",
                blessed=True,
                promoted=True,
            ),
            "run r1 succeeded: version 1 promoted to champion (r2 0.8000)",
        ),
        (
            tj(
                "r5",
                "Succeeded",
                modelVersion="5",
                metrics={"accuracy": 0.99},
                blessed=True,
                promoted=False,
            ),
            "run r5 succeeded: version 5 blessed, not promoted (accuracy 0.9900)",
        ),
        (
            tj("r6", "Failed", message="DataValidationFailed: column petal_width has 12 nulls"),
            "run r6 failed: DataValidationFailed: column petal_width has 12 nulls",
        ),
    ],
)
def test_outcome_tells_the_decision_with_both_metrics(body: dict, text: str) -> None:
    assert outcome(runs(body)[0]) == text


@pytest.mark.parametrize(
    ("status", "bodies", "text"),
    [
        ({}, [], None),
        ({"lastRun": "r6"}, [tj("r6", "Failed", message="boom")], "run r6 failed: boom"),
        ({"lastRun": "r6", "message": "run r6 failed: boom"}, [], "run r6 failed: boom"),
        (
            {"lastRun": "r6", "lastRunPhase": "Succeeded", "message": "other"},
            [],
            "run r6 succeeded",
        ),
    ],
)
def test_last_outcome_survives_pruning(status: dict, bodies: list[dict], text: str | None) -> None:
    assert last_outcome(ContinuousTrainingStatus.parse(status), runs(*bodies)) == text


# --- history -----------------------------------------------------------------------------


def _history() -> list[Run]:
    return runs(
        tj("s1", "Succeeded", done="2026-03-01T01:00:00Z"),
        tj("f1", "Failed", done="2026-03-01T02:00:00Z"),
        tj("s2", "Succeeded", done="2026-03-01T03:00:00Z"),
        tj("f2", "Failed", done="2026-03-01T04:00:00Z"),
        tj("s3", "Succeeded", done="2026-03-01T05:00:00Z"),
        tj("active", "Running"),
        tj("pending", None),
    )


@pytest.mark.parametrize(
    ("successful", "failed", "doomed"),
    [
        (3, 1, ["f1"]),
        (2, 1, ["s1", "f1"]),
        (2, 2, ["s1"]),
        (1, 0, ["s1", "f1", "s2", "f2"]),
        (0, 0, ["s1", "f1", "s2", "f2", "s3"]),
        (10, 10, []),
    ],
)
def test_runs_to_prune_oldest_first_never_unfinished(
    successful: int, failed: int, doomed: list[str]
) -> None:
    assert runs_to_prune(_history(), successful, failed) == doomed


# --- status ------------------------------------------------------------------------------


def _summary(status: dict, **overrides: Any) -> dict[str, Any]:
    """summarize() on the model, serialised as the runtime writes it."""
    arguments: dict[str, Any] = {
        "generation": 3,
        "suspended": False,
        "problem": None,
        "creating": False,
        "outcome_text": None,
        "at": AT,
    }
    arguments.update(overrides)
    arguments["at"] = datetime.fromisoformat(arguments["at"])
    return serialise(summarize(ContinuousTrainingStatus.parse(status), **arguments))


def _conditions(result: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result["conditions"]}


CHAMPION = {"version": "1", "metrics": {"accuracy": 0.9}}
TRIGGERED = {"time": AT, "reason": "Manual", "detail": "ctrain.dev/trigger=1"}
INVALID = Problem(Reason.INVALID_SPEC, "spec.triggers.schedule: '61 * * * *' is not a cron")

# status, summarize overrides, phase, Ready, Running, Argo CD health
SCENARIOS = [
    # No champion yet: summarize's Ready is True, which the operator then turns False
    # (health.continuoustraining); Argo CD already reads the missing champion as Progressing.
    pytest.param({}, {}, "Idle", ("True", "Idle"), ("False", "Idle"), "Progressing", id="first"),
    pytest.param(
        {"activeRun": "r1", "lastTriggered": TRIGGERED, "champion": CHAMPION},
        {"creating": True},
        "Running",
        ("True", "RunActive"),
        ("True", "Triggered"),
        "Healthy",
        id="creating",
    ),
    pytest.param(
        {"activeRun": "r1", "lastTriggered": TRIGGERED, "champion": CHAMPION},
        {},
        "Running",
        ("True", "RunActive"),
        ("True", "RunActive"),
        "Healthy",
        id="running",
    ),
    pytest.param(
        {"lastRun": "r1", "lastRunPhase": "Succeeded", "champion": CHAMPION},
        {"outcome_text": "run r1 succeeded: v1"},
        "Idle",
        ("True", "RunSucceeded"),
        ("False", "Idle"),
        "Healthy",
        id="succeeded",
    ),
    pytest.param(
        {"lastRun": "r1", "lastRunPhase": "Failed"},
        {"outcome_text": "run r1 failed: boom"},
        "Idle",
        ("False", "RunFailed"),
        ("False", "Idle"),
        "Degraded",
        id="failed",
    ),
    pytest.param(
        {"lastRun": "r1", "lastRunPhase": "Failed", "activeRun": "r2"},
        {},
        "Running",
        ("False", "RunActive"),
        ("True", "RunActive"),
        "Healthy",
        id="retrying-after-failure",
    ),
    pytest.param(
        {"activeRun": "r2"},
        {"suspended": True},
        "Suspended",
        ("True", "Suspended"),
        ("True", "RunActive"),
        "Suspended",
        id="suspended-with-active-run",
    ),
    pytest.param(
        {},
        {"suspended": True},
        "Suspended",
        ("True", "Suspended"),
        ("False", "Suspended"),
        "Suspended",
        id="suspended",
    ),
    pytest.param(
        {},
        {"problem": INVALID},
        "Idle",
        ("False", "InvalidSpec"),
        ("False", "Idle"),
        "Degraded",
        id="invalid-spec",
    ),
    pytest.param(
        {"activeRun": "r1"},
        {"problem": Problem(Reason.STORAGE_ERROR, "model registry: timeout")},
        "Running",
        ("False", "StorageError"),
        ("True", "RunActive"),
        "Degraded",
        id="storage-error",
    ),
]


@pytest.mark.parametrize(("status", "overrides", "phase", "ready", "running", "health"), SCENARIOS)
def test_summarize(
    lua: LuaHealth,
    status: dict,
    overrides: dict,
    phase: str,
    ready: tuple[str, str],
    running: tuple[str, str],
    health: str,
) -> None:
    result = _summary(status, **overrides)
    assert result["phase"] == phase
    assert result["observedGeneration"] == 3
    assert _conditions(result) == {"Ready": ready, "Running": running}
    problem = overrides.get("problem")
    if problem is not None:
        assert result["message"] == problem.message
    # what the operator writes parses with the API model and gets the intended Argo CD health
    obj = {
        **LOOP,
        "spec": {"template": TEMPLATE, "suspend": bool(overrides.get("suspended"))},
        "status": {k: v for k, v in result.items() if v is not None},
    }
    ContinuousTraining.model_validate(obj)
    script = (ARGOCD / GROUP / "ContinuousTraining" / "health.lua").read_text()
    assert lua.evaluate(script, "ContinuousTraining", obj)["status"] == health


def test_summarize_keeps_transition_times_of_unchanged_conditions() -> None:
    first = _summary({"activeRun": "r1"}, at="2026-03-01T10:00:00Z")
    later = _summary({**first, "activeRun": "r1"}, at="2026-03-01T11:00:00Z")
    assert [c["lastTransitionTime"] for c in later["conditions"]] == [
        "2026-03-01T10:00:00Z",
        "2026-03-01T10:00:00Z",
    ]
    finished = _summary({**later, "activeRun": None}, at="2026-03-01T12:00:00Z")
    times = {c["type"]: c["lastTransitionTime"] for c in finished["conditions"]}
    assert times == {"Ready": "2026-03-01T10:00:00Z", "Running": "2026-03-01T12:00:00Z"}


@pytest.fixture(scope="module")
def lua() -> LuaHealth:
    return LuaHealth()
