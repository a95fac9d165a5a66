"""Pure computation of a TrainingJob's status from its Job, the Job's pods and the old status.

The trainer reports through its termination message (docs/contracts.md); the Job
controller reports deadlines and retries through the Job's conditions. A finished
TrainingJob's status is final: it is never recomputed, so a Job removed by its TTL (or an
operator restart) loses nothing.
"""

from typing import Any

from pydantic import ValidationError

from ctrain.api import ConditionType, Reason, TrainingJobPhase
from ctrain.api.contracts import TrainingFailed, TrainingSucceeded, parse_trainer_result
from ctrain.controller.conditions import get_condition, set_condition

__all__ = ["TERMINAL", "compute_status", "invalid_spec_status", "is_terminal"]

TERMINAL = (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)
_VALIDATION_DID_NOT_RUN = {Reason.DATASET_NOT_FOUND, Reason.DATASET_UNREADABLE, Reason.INVALID_SPEC}


def is_terminal(status: dict[str, Any] | None) -> bool:
    return status is not None and status.get("phase") in TERMINAL


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == "trainer":
            return (container.get("state") or {}).get("terminated")
    return None


def _summary(terminated: dict[str, Any] | None) -> TrainingSucceeded | TrainingFailed | None:
    """The trainer's result; None when there is none or it does not hold to the contract."""
    if not terminated or not terminated.get("message"):
        return None
    try:
        return parse_trainer_result(terminated["message"])
    except ValidationError:
        return None


def _job_condition(job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    condition = get_condition((job.get("status") or {}).get("conditions"), kind)
    return condition if condition and condition.get("status") == "True" else None


def _waiting_message(pods: list[dict[str, Any]]) -> str | None:
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
    old: dict[str, Any] | None,
    job: dict[str, Any] | None,
    pods: list[dict[str, Any]],
    *,
    generation: int,
    job_name: str,
    active_deadline_seconds: int,
) -> dict[str, Any]:
    """The TrainingJob's new status; `old` unchanged if it was already final."""
    old = dict(old or {})
    if is_terminal(old):
        return old
    status = {**old, "observedGeneration": generation, "jobName": job_name}
    conditions: list[dict[str, Any]] = list(old.get("conditions") or [])

    def cond(kind: ConditionType, value: bool | None, reason: str, message: str = "") -> None:
        nonlocal conditions
        conditions = set_condition(conditions, kind, value, reason, message, generation)

    job_status = (job or {}).get("status") or {}
    if job_status.get("startTime"):
        status["startTime"] = job_status["startTime"]
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
        status["completionTime"] = job_status.get("completionTime") or job_status.get("startTime")
    elif job is not None and (failed := _job_condition(job, "Failed")):
        last = _terminated(finished[-1]) if finished else None
        summary = _summary(last)
        if isinstance(summary, TrainingFailed):
            _failed(
                status,
                cond,
                summary.reason or Reason.TRAINING_FAILED,
                summary.message or "training failed",
            )
        elif failed.get("reason") == "DeadlineExceeded":
            _failed(
                status,
                cond,
                Reason.DEADLINE_EXCEEDED,
                f"training did not finish within activeDeadlineSeconds "
                f"({active_deadline_seconds}s)",
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
        status["completionTime"] = failed.get("lastTransitionTime")
    elif job is not None and (job_status.get("active") or old.get("phase") == "Running"):
        waiting = _waiting_message(pods)
        # A pod that already finished while the Job controller has not yet concluded still
        # means the run started: never step back from Running to Pending.
        started = ("Running", "Succeeded", "Failed")
        running = any((p.get("status") or {}).get("phase") in started for p in pods)
        running = running or old.get("phase") == "Running"
        status["phase"] = TrainingJobPhase.RUNNING if running else TrainingJobPhase.PENDING
        status["message"] = waiting or ("training" if running else "waiting for the trainer pod")
        cond(ConditionType.READY, False, Reason.JOB_RUNNING, status["message"])
        cond(ConditionType.TRAINED, None, Reason.JOB_RUNNING, "training in progress")
    else:
        status["phase"] = TrainingJobPhase.PENDING
        status["message"] = f"created Job {job_name}"
        cond(ConditionType.READY, False, Reason.JOB_CREATED, status["message"])
    status["conditions"] = conditions
    return status


def _succeeded(status: dict[str, Any], summary: TrainingSucceeded, cond: Any) -> None:
    status.update(
        {
            "phase": TrainingJobPhase.SUCCEEDED,
            "modelVersion": str(summary.version),
            "artifactUri": summary.artifact_uri,
            "task": summary.task,
            "metrics": summary.metrics,
            "keyMetric": summary.key_metric,
            "baseline": summary.baseline and summary.baseline.to_wire(),
            "comparison": summary.comparison and summary.comparison.to_wire(),
            "gates": [gate.to_wire() for gate in summary.gates],
            "decision": summary.decision,
            "blessed": summary.blessed,
            "promoted": summary.promoted,
            "dataFingerprint": summary.data_fingerprint,
            "rows": summary.rows,
        }
    )
    version = status["modelVersion"]
    decision = summary.decision or ""
    status["message"] = f"model {summary.model} version {version}: {decision}".rstrip(": ")
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
    cond(ConditionType.READY, True, summary.promotion_reason or promoted, status["message"])


def _failed(status: dict[str, Any], cond: Any, reason: str, message: str) -> None:
    status["phase"] = TrainingJobPhase.FAILED
    status["message"] = f"{reason}: {message}"
    if reason == Reason.DATA_VALIDATION_FAILED:
        cond(ConditionType.DATA_VALIDATED, False, reason, message)
    elif reason in _VALIDATION_DID_NOT_RUN:
        cond(ConditionType.DATA_VALIDATED, None, reason, "validation did not run")
    cond(ConditionType.TRAINED, False, reason, message)
    cond(ConditionType.READY, False, reason, message)


def invalid_spec_status(
    old: dict[str, Any] | None, generation: int, message: str
) -> dict[str, Any]:
    """Status for a spec the operator cannot act on (what CEL could not reject)."""
    conditions: list[dict[str, Any]] = list((old or {}).get("conditions") or [])
    for kind in (ConditionType.TRAINED, ConditionType.READY):
        conditions = set_condition(
            conditions, kind, False, Reason.INVALID_SPEC, message, generation
        )
    return {
        **(old or {}),
        "phase": TrainingJobPhase.FAILED,
        "observedGeneration": generation,
        "message": f"{Reason.INVALID_SPEC}: {message}",
        "conditions": conditions,
    }
