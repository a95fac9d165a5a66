"""Pure pieces of the ContinuousTraining controller: runs, their names, history, the status.

A run is a TrainingJob the loop owns (ownerReference with `controller: true`, label
`ctrain.dev/continuoustraining`). Its name comes from the trigger time and is written to
`status.activeRun` BEFORE the TrainingJob is created, so a restart in between creates
that same run instead of a second one. Nothing here does I/O; `reconcile` applies it.
"""

import dataclasses
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from ctrain.api import (
    ConditionType,
    ContinuousTrainingPhase,
    ContinuousTrainingStatus,
    Reason,
    TrainingJobPhase,
)
from ctrain.controller.conditions import get_condition, set_condition
from ctrain.controller.names import child_name, label_value
from ctrain.controller.podspec import MANAGED_BY, owner_reference

__all__ = [
    "CONTINUOUS_LABEL",
    "MESSAGE_ANNOTATION",
    "PROBLEM_REASONS",
    "REASON_LABEL",
    "TRIGGERED_AT_ANNOTATION",
    "Problem",
    "Run",
    "Tracking",
    "build_run",
    "copied",
    "last_outcome",
    "outcome",
    "owned_runs",
    "run_name",
    "runs_to_prune",
    "summarize",
    "track",
]

CONTINUOUS_LABEL = "ctrain.dev/continuoustraining"
REASON_LABEL = "ctrain.dev/trigger-reason"
MESSAGE_ANNOTATION = "ctrain.dev/trigger-message"
TRIGGERED_AT_ANNOTATION = "ctrain.dev/triggered-at"
# GitOps tools track what they own by these; copied onto a run, Argo CD would prune it.
_NOT_COPIED_KEYS = frozenset({"app.kubernetes.io/instance"})
_NOT_COPIED_PREFIXES = ("argocd.argoproj.io/",)
_FINISHED = (TrainingJobPhase.SUCCEEDED.value, TrainingJobPhase.FAILED.value)
PROBLEM_REASONS = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.STORAGE_ERROR,
        Reason.DATASET_NOT_FOUND,
        Reason.DATASET_UNREADABLE,
    }
)


def run_name(loop: str, at: datetime, taken: Collection[str]) -> str:
    """`<loop>-<YYYYMMDD-HHMMSS>` (UTC) of the trigger time; the next free second if taken."""
    for offset in range(3600):
        stamp = (at + timedelta(seconds=offset)).strftime("%Y%m%d-%H%M%S")
        name = child_name(loop, stamp)
        if name not in taken:
            return name
    raise ValueError(f"no free run name for {loop} near {at}")  # 3600 runs in an hour


def copied(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Template labels/annotations without the keys a GitOps tool would claim the run by."""
    return {
        key: value
        for key, value in (metadata or {}).items()
        if key not in _NOT_COPIED_KEYS and not key.startswith(_NOT_COPIED_PREFIXES)
    }


def build_run(
    body: Mapping[str, Any],
    template: Mapping[str, Any],
    name: str,
    *,
    reason: str,
    detail: str,
    triggered_at: str,
) -> dict[str, Any]:
    """The TrainingJob of one run: the template's spec, owned by and labelled for the loop."""
    meta = template.get("metadata") or {}
    loop = body["metadata"]["name"]
    labels = {
        **copied(meta.get("labels")),
        **MANAGED_BY,
        CONTINUOUS_LABEL: label_value(loop),
        REASON_LABEL: reason,
    }
    annotations = {
        **copied(meta.get("annotations")),
        MESSAGE_ANNOTATION: detail,
        TRIGGERED_AT_ANNOTATION: triggered_at,
    }
    return {
        "apiVersion": body["apiVersion"],
        "kind": "TrainingJob",
        "metadata": {
            "name": name,
            "namespace": body["metadata"]["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_reference(body)],
        },
        "spec": dict(template["spec"]),
    }


@dataclasses.dataclass(frozen=True)
class Run:
    """What the loop needs to know about one of its TrainingJobs."""

    name: str
    phase: str | None
    created: str
    finished_at: str
    deleting: bool
    status: Mapping[str, Any]

    @property
    def finished(self) -> bool:
        return self.phase in _FINISHED

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "Run":
        meta, status = body["metadata"], body.get("status") or {}
        created = meta.get("creationTimestamp") or ""
        return cls(
            name=meta["name"],
            phase=status.get("phase"),
            created=created,
            finished_at=status.get("completionTime") or created,
            deleting=bool(meta.get("deletionTimestamp")),
            status=status,
        )


def owned_runs(bodies: list[dict[str, Any]], uid: str) -> list[Run]:
    """The loop's runs: TrainingJobs whose controller ownerReference is the loop."""
    return [
        Run.from_body(body)
        for body in bodies
        if any(
            ref.get("uid") == uid and ref.get("controller")
            for ref in body["metadata"].get("ownerReferences") or []
        )
    ]


@dataclasses.dataclass(frozen=True)
class Tracking:
    """The loop's runs compared with its status: what is active, what just ended."""

    active: str | None = None
    finished: Run | None = None  # the active run finished since the last status
    vanished: str | None = None  # the active run was deleted before it finished
    create_pending: bool = False  # status names a run whose creation was interrupted
    others: tuple[str, ...] = ()  # unfinished runs that are not the active one


def track(status: ContinuousTrainingStatus, runs: list[Run]) -> Tracking:
    by_name = {run.name: run for run in runs}
    active = status.active_run
    finished = vanished = None
    create_pending = False
    if active:
        run = by_name.get(active)
        running = get_condition(status.conditions, ConditionType.RUNNING)
        if run is None and running is not None and running.reason == Reason.TRIGGERED:
            create_pending = True
        elif run is None:
            active, vanished = None, active
        elif run.finished:
            active, finished = None, run
    unfinished = sorted(
        (r for r in runs if not r.finished and not r.deleting and r.name != active),
        key=lambda r: (r.created, r.name),
    )
    if active is None and unfinished:
        # status lost (a backup restored without it): adopt the newest unfinished run
        active = unfinished.pop().name
    return Tracking(active, finished, vanished, create_pending, tuple(r.name for r in unfinished))


def outcome(run: Run) -> str:
    """One line about a finished run: version, promoted or not, key metric vs the champion."""
    status = run.status
    if run.phase != TrainingJobPhase.SUCCEEDED:
        return f"run {run.name} failed: {status.get('message') or 'no message'}"
    metrics = status.get("metrics") or {}
    key = (status.get("keyMetric") or "").partition("=")[0] or next(iter(sorted(metrics)), "")
    baseline = status.get("baseline") or {}
    theirs = (baseline.get("metrics") or {}).get(key)
    if status.get("promoted"):
        verdict = "promoted to champion"
    elif status.get("blessed"):
        verdict = "blessed, not promoted"
    elif baseline.get("version"):
        verdict = f"not blessed, champion v{baseline['version']} kept"
    else:
        verdict = "not blessed"
    compared = f"{key} {metrics[key]:.4f}" if key in metrics else "no metrics"
    if theirs is not None:
        compared += f" vs champion v{baseline.get('version')} {theirs:.4f}"
    text = f"run {run.name} succeeded: version {status.get('modelVersion')} {verdict} ({compared})"
    return f"{text}; {status['decision']}" if status.get("decision") else text


def last_outcome(status: ContinuousTrainingStatus, runs: list[Run]) -> str | None:
    """The outcome of `status.lastRun`, from its TrainingJob or, once pruned, the old message."""
    last = status.last_run
    if not last:
        return None
    run = next((r for r in runs if r.name == last and r.finished), None)
    if run is not None:
        return outcome(run)
    message = status.message or ""
    if message.startswith(f"run {last} "):
        return message
    return f"run {last} {str(status.last_run_phase or 'finished').lower()}"


def runs_to_prune(runs: list[Run], successful_limit: int, failed_limit: int) -> list[str]:
    """Finished runs beyond the history limits, oldest first (model versions stay)."""
    doomed: list[Run] = []
    for phase, limit in (
        (TrainingJobPhase.SUCCEEDED, successful_limit),
        (TrainingJobPhase.FAILED, failed_limit),
    ):
        done = sorted(
            (r for r in runs if r.phase == phase and not r.deleting),
            key=lambda r: (r.finished_at, r.created, r.name),
            reverse=True,
        )
        doomed.extend(done[limit:])
    return [r.name for r in sorted(doomed, key=lambda r: (r.finished_at, r.created, r.name))]


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why the loop cannot do all its work: an invalid spec, unreachable storage or data."""

    reason: str
    message: str


def summarize(
    status: ContinuousTrainingStatus,
    *,
    generation: int,
    suspended: bool,
    problem: Problem | None,
    creating: bool,
    outcome_text: str | None,
    at: datetime,
) -> ContinuousTrainingStatus:
    """Phase, conditions (Ready, Running) and message from the rest of the status."""
    active = status.active_run
    last, last_phase = status.last_run, status.last_run_phase
    triggered = status.last_triggered.reason if status.last_triggered else None
    started = f"run {active} started ({triggered})" if triggered else f"run {active} is active"
    ready: tuple[bool, str, str]
    if problem is not None:
        ready = (False, problem.reason, problem.message)
    elif suspended:
        note = f"; run {active} is still training" if active else ""
        ready = (True, Reason.SUSPENDED, f"no run starts while suspended{note}")
    elif last_phase == TrainingJobPhase.FAILED and active:
        ready = (False, Reason.RUN_ACTIVE, f"{started}; the last run {last} failed")
    elif last_phase == TrainingJobPhase.FAILED:
        ready = (False, Reason.RUN_FAILED, outcome_text or f"run {last} failed")
    elif active:
        ready = (True, Reason.RUN_ACTIVE, started)
    elif last_phase == TrainingJobPhase.SUCCEEDED:
        ready = (True, Reason.RUN_SUCCEEDED, f"run {last} succeeded")
    else:
        ready = (True, Reason.IDLE, "waiting for a trigger")
    if active:
        running = (True, Reason.TRIGGERED if creating else Reason.RUN_ACTIVE, started)
    else:
        running = (False, Reason.SUSPENDED if suspended else Reason.IDLE, "no run active")
    result = status.model_copy(deep=True)
    for kind, (value, reason, message) in (
        (ConditionType.READY, ready),
        (ConditionType.RUNNING, running),
    ):
        result.conditions = set_condition(
            result.conditions, kind, value, reason, message, generation, at
        )
    if suspended:
        result.phase = ContinuousTrainingPhase.SUSPENDED
    else:
        result.phase = ContinuousTrainingPhase.RUNNING if active else ContinuousTrainingPhase.IDLE
    result.observed_generation = generation
    if problem is not None:
        result.message = problem.message
    else:
        result.message = outcome_text or (f"{started}; no run finished yet" if active else ready[2])
    return result
