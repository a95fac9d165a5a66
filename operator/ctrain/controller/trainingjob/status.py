"""Pure computation of a TrainingJob's status from its Job, the Job's pods and the old status.

The trainer reports through its termination message (docs/contracts.md); the Job
controller reports deadlines and retries through the Job's conditions. A finished
TrainingJob's status is final: it is never recomputed, so a Job removed by its TTL (or an
operator restart) loses nothing.
"""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ctrain.api import (
    ConditionType,
    Reason,
    TrainingJobPhase,
    TrainingJobStatus,
    VersionMetrics,
)
from ctrain.api.contracts import TrainingFailed, TrainingSucceeded, parse_trainer_result
from ctrain.controller.conditions import safe_reason, set_condition

__all__ = [
    "TERMINAL",
    "compute_status",
    "finished_job",
    "invalid_spec_status",
    "is_terminal",
    "job_deleted_status",
    "recovered_status",
]

TERMINAL = (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)
_VALIDATION_DID_NOT_RUN = {Reason.DATASET_NOT_FOUND, Reason.DATASET_UNREADABLE, Reason.INVALID_SPEC}
Body = dict[str, Any]
SetCondition = Callable[[ConditionType, bool | None, str, str], None]


def is_terminal(status: TrainingJobStatus | None) -> bool:
    return status is not None and status.phase in TERMINAL


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _terminated(pod: Body) -> Body | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == "trainer":
            found: Body | None = (container.get("state") or {}).get("terminated")
            return found
    return None


def _summary(terminated: Body | None) -> TrainingSucceeded | TrainingFailed | None:
    """The trainer's result; None when there is none or it does not hold to the contract."""
    if not terminated or not terminated.get("message"):
        return None
    try:
        return parse_trainer_result(terminated["message"])
    except ValidationError:
        return None


def _job_condition(job: Body, kind: str) -> Body | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and condition.get("status") == "True":
            found: Body = condition
            return found
    return None


def finished_job(job: Body | None) -> bool:
    """Whether the Job controller concluded the Job (Complete or Failed)."""
    return job is not None and bool(
        _job_condition(job, "Complete") or _job_condition(job, "Failed")
    )


def _waiting_message(pods: list[Body]) -> str | None:
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") and waiting["reason"] not in (
                "ContainerCreating",
                "PodInitializing",
            ):
                return f"trainer pod {pod['metadata']['name']} waiting: {waiting['reason']}: " + (
                    waiting.get("message") or ""
                )
    return None


def compute_status(
    old: TrainingJobStatus,
    job: Body | None,
    pods: list[Body],
    *,
    generation: int,
    job_name: str,
    active_deadline_seconds: int,
    at: datetime | None = None,
) -> TrainingJobStatus:
    """The TrainingJob's new status; `old` unchanged if it was already final."""
    if is_terminal(old):
        return old
    status = old.model_copy(deep=True)
    status.observed_generation = generation
    status.job_name = job_name

    def cond(kind: ConditionType, value: bool | None, reason: str, message: str = "") -> None:
        status.conditions = set_condition(
            status.conditions, kind, value, reason, message, generation, at
        )

    job_status = (job or {}).get("status") or {}
    finished = sorted(
        (p for p in pods if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")),
        key=lambda p: p["metadata"].get("creationTimestamp", ""),
    )
    if job is not None and _job_condition(job, "Complete"):
        succeeded = [p for p in finished if p["status"]["phase"] == "Succeeded"]
        summary = _summary(_terminated(succeeded[-1])) if succeeded else None
        if isinstance(summary, TrainingSucceeded):
            _succeeded(status, summary, cond)
        else:
            _failed(
                status,
                cond,
                Reason.NO_TERMINATION_MESSAGE,
                "the trainer exited 0 without writing its result to the termination message",
            )
        status.completion_time = _time(
            job_status.get("completionTime") or job_status.get("startTime")
        )
    elif job is not None and (failed := _job_condition(job, "Failed")):
        _job_failed(status, cond, failed, finished, active_deadline_seconds)
    elif job is not None and (job_status.get("active") or old.phase == TrainingJobPhase.RUNNING):
        waiting = _waiting_message(pods)
        # A pod that already finished while the Job controller has not yet concluded still
        # means the run started: never step back from Running to Pending.
        started = ("Running", "Succeeded", "Failed")
        running = any((p.get("status") or {}).get("phase") in started for p in pods)
        running = running or old.phase == TrainingJobPhase.RUNNING
        status.phase = TrainingJobPhase.RUNNING if running else TrainingJobPhase.PENDING
        status.message = waiting or ("training" if running else "waiting for the trainer pod")
        cond(ConditionType.READY, False, Reason.JOB_RUNNING, status.message)
        cond(ConditionType.TRAINED, None, Reason.JOB_RUNNING, "training in progress")
    else:
        status.phase = TrainingJobPhase.PENDING
        status.message = f"created Job {job_name}"
        cond(ConditionType.READY, False, Reason.JOB_CREATED, status.message)
    if status.phase != TrainingJobPhase.PENDING and job_status.get("startTime"):
        # The Job's start, once training has begun: a Job whose pods cannot be created yet
        # (a quota, a missing Secret) has "started" for the Job controller, not for us.
        status.start_time = _time(job_status["startTime"])
    return status


def _job_failed(
    status: TrainingJobStatus,
    cond: SetCondition,
    failed: Body,
    finished: list[Body],
    active_deadline_seconds: int,
) -> None:
    last = _terminated(finished[-1]) if finished else None
    summary = _summary(last)
    if isinstance(summary, TrainingFailed):
        reason = safe_reason(summary.reason, Reason.TRAINING_FAILED)
        _failed(status, cond, reason, summary.message or "training failed")
    elif failed.get("reason") == "DeadlineExceeded":
        _failed(
            status,
            cond,
            Reason.DEADLINE_EXCEEDED,
            f"training did not finish within activeDeadlineSeconds ({active_deadline_seconds}s)",
        )
    else:
        detail = ""
        if last is not None:
            detail = f": exit code {last.get('exitCode')}"
            if last.get("message"):
                detail += f": {last['message'].strip()[-500:]}"
        _failed(
            status,
            cond,
            Reason.TRAINING_FAILED,
            f"trainer failed ({failed.get('reason', 'JobFailed')}){detail}",
        )
    status.completion_time = _time(failed.get("lastTransitionTime"))


def _succeeded(status: TrainingJobStatus, summary: TrainingSucceeded, cond: SetCondition) -> None:
    status.phase = TrainingJobPhase.SUCCEEDED
    status.model_version = str(summary.version)
    status.artifact_uri = summary.artifact_uri
    status.task = summary.task
    status.metrics = dict(summary.metrics)
    status.key_metric = summary.key_metric
    baseline = summary.baseline
    status.baseline = (
        VersionMetrics(version=baseline.version, metrics=dict(baseline.metrics))
        if baseline
        else None
    )
    status.comparison = summary.comparison
    status.gates = list(summary.gates)
    status.decision = summary.decision
    status.blessed = summary.blessed
    status.promoted = summary.promoted
    status.data_fingerprint = summary.data_fingerprint
    status.rows = summary.rows
    version = status.model_version
    decision = summary.decision or ""
    status.message = f"model {summary.model} version {version}: {decision}".rstrip(": ")
    cond(
        ConditionType.DATA_VALIDATED,
        True,
        Reason.DATA_VALID,
        f"{summary.rows} rows passed the expectations",
    )
    cond(
        ConditionType.TRAINED,
        True,
        Reason.TRAINING_SUCCEEDED,
        f"version {version} registered at {summary.artifact_uri} ({summary.key_metric})",
    )
    if summary.blessed_reason:  # the trainer's own (NotSignificant, ChampionNotComparable...)
        reason = summary.blessed_reason
    elif summary.blessed:
        reason = Reason.GATES_PASSED if summary.baseline else Reason.NO_BASELINE
    else:
        gates_failed = any(not gate.passed for gate in summary.gates)
        reason = Reason.GATES_FAILED if gates_failed else Reason.BASELINE_NOT_BEATEN
    cond(ConditionType.BLESSED, summary.blessed, reason, decision)
    promoted = Reason.PROMOTED if summary.promoted else Reason.NOT_PROMOTED
    cond(ConditionType.READY, True, summary.promotion_reason or promoted, status.message)


def _failed(status: TrainingJobStatus, cond: SetCondition, reason: str, message: str) -> None:
    status.phase = TrainingJobPhase.FAILED
    status.message = f"{reason}: {message}"
    if reason == Reason.DATA_VALIDATION_FAILED:
        cond(ConditionType.DATA_VALIDATED, False, reason, message)
    elif reason in _VALIDATION_DID_NOT_RUN:
        cond(ConditionType.DATA_VALIDATED, None, reason, "validation did not run")
    cond(ConditionType.TRAINED, False, reason, message)
    cond(ConditionType.READY, False, reason, message)


def invalid_spec_status(
    old: TrainingJobStatus,
    generation: int,
    message: str,
    reason: str = Reason.INVALID_SPEC,
    at: datetime | None = None,
) -> TrainingJobStatus:
    """Status for a spec the operator cannot act on (what CEL could not reject)."""
    status = old.model_copy(deep=True)
    for kind in (ConditionType.TRAINED, ConditionType.READY):
        status.conditions = set_condition(
            status.conditions, kind, False, reason, message, generation, at
        )
    status.phase = TrainingJobPhase.FAILED
    status.observed_generation = generation
    status.message = f"{reason}: {message}"
    return status


def job_deleted_status(
    old: TrainingJobStatus, generation: int, job_name: str, at: datetime | None = None
) -> TrainingJobStatus:
    """The Job of a running TrainingJob was deleted before it finished: the run failed."""
    status = invalid_spec_status(old, generation, "the training Job was deleted", at=at)
    status.message = f"JobDeleted: Job {job_name} was deleted before it finished"
    return status


def recovered_status(
    old: TrainingJobStatus,
    generation: int,
    job_name: str,
    summary: TrainingSucceeded,
    completed: datetime | None,
    at: datetime | None = None,
) -> TrainingJobStatus:
    """The Job is gone, but the registry holds the version this TrainingJob published: it
    succeeded. `summary` is rebuilt from the version's metadata.json, not from the pod."""
    status = old.model_copy(deep=True)
    status.observed_generation = generation
    status.job_name = job_name

    def cond(kind: ConditionType, value: bool | None, reason: str, message: str = "") -> None:
        status.conditions = set_condition(
            status.conditions, kind, value, reason, message, generation, at
        )

    _succeeded(status, summary, cond)
    status.message = (
        f"{status.message}; recovered from the registry (Job {job_name} was gone before "
        "its result was read)"
    )
    cond(ConditionType.READY, True, Reason.RECOVERED_FROM_REGISTRY, status.message)
    status.completion_time = completed
    return status
