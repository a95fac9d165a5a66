"""Live performance of a ModelDeployment: schedule the check, read it, judge it.

Every `monitoring.performance.intervalSeconds` a pass starts the check's Job
(`checkjob`); the Job's events bring the ModelDeployment back, and once the Job has
concluded the pass reads its pod's termination message on a fresh read, copies the
served version's figures into `status.performance`, sets `PerformanceDegraded` from the
pure decision in `ctrain.feedback.verdict` and deletes the Job. The time of the last
check is `status.performance.checkedAt`, so an operator restart neither skips a check
nor runs one early.

Fails closed: until a check has answered, and whenever one fails or too few of the
served version's predictions are labelled, the condition is Unknown with the reason,
never False (a pass) nor True (a retraining).
"""

from datetime import datetime
from typing import Any

from ctrain.api import (
    ConditionType,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    PerformanceMonitoringSpec,
    PerformanceStatus,
    Reason,
)
from ctrain.api.contracts import PerformanceFailed, PerformanceMeasured
from ctrain.controller import metrics
from ctrain.controller.conditions import get_condition, set_condition
from ctrain.controller.kube import JOBS, PODS
from ctrain.controller.modeldeployment.checkjob import (
    CHECK_LABEL,
    build_check_job,
    check_job_name,
    check_result,
)
from ctrain.controller.names import label_value
from ctrain.controller.runtime.context import Context
from ctrain.controller.runtime.store import ObjectRef
from ctrain.feedback import Judgement, judge, not_measured

__all__ = ["apply_result", "clear", "forget_series", "monitor"]

Body = dict[str, Any]
# While a check runs its Job's events bring the object back; this is only a safety net.
RUNNING_RECHECK_SECONDS = 60.0


def monitor(
    context: Context,
    body: Body,
    spec: ModelDeploymentSpec,
    performance: PerformanceMonitoringSpec,
    status: ModelDeploymentStatus,
) -> float:
    """Advance the check by one step; seconds until the next step is due."""
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    job = _owned(context.store(JOBS).get(namespace, check_job_name(name)), body)
    now = context.clock()
    if job is not None:
        if not _finished(job):
            _not_yet(status, performance, now, "a check is running")
            return RUNNING_RECHECK_SECONDS
        # The outcome is final: read the pods as they are now, not as last watched.
        selector = f"{CHECK_LABEL}={label_value(name)}"
        uid = job["metadata"]["uid"]
        pods = [p for p in context.kube.list(PODS, namespace, labels=selector) if _owns(uid, p)]
        result = check_result(job, pods)
        apply_result(status, performance, result, at=_finished_at(job) or now)
        _export(namespace, name, spec.model, status, result)
        context.kube.delete(JOBS, namespace, check_job_name(name))
        return float(performance.interval_seconds)
    last = status.performance.checked_at if status.performance else None
    if last is not None:
        # checkedAt comes from the pod's clock, which may run a little ahead of ours;
        # one far ahead (a broken clock) must not stop the checks.
        waited = (now - last).total_seconds()
        if -performance.interval_seconds < waited < performance.interval_seconds:
            return performance.interval_seconds - max(waited, 0.0)
    created = context.kube.create(JOBS, build_check_job(body, spec, performance, context.config))
    context.remember(JOBS, created)
    _not_yet(status, performance, now, "the first check is running")
    return RUNNING_RECHECK_SECONDS


def clear(context: Context, body: Body, status: ModelDeploymentStatus) -> None:
    """Performance monitoring is off: no figures, no condition, no check left running."""
    status.performance = None
    status.conditions = [
        c for c in status.conditions if c.type != ConditionType.PERFORMANCE_DEGRADED
    ]
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    if _owned(context.store(JOBS).get(namespace, check_job_name(name)), body) is not None:
        context.kube.delete(JOBS, namespace, check_job_name(name))


def apply_result(
    status: ModelDeploymentStatus,
    performance: PerformanceMonitoringSpec,
    result: PerformanceMeasured | PerformanceFailed,
    *,
    at: datetime,
) -> Judgement:
    """`status.performance` and `PerformanceDegraded` from one check's result (pure)."""
    assert performance.threshold is not None  # the API requires it when enabled
    previous = status.performance
    version = status.current_version
    if isinstance(result, PerformanceFailed):
        judgement = not_measured(
            Reason.PERFORMANCE_CHECK_FAILED, f"{result.reason}: {result.message}"
        )
        figures = PerformanceStatus(
            version=version,
            metric=performance.metric.value if performance.metric else None,
            threshold=performance.threshold,
            checked_at=at,
        )
    else:
        served = next((v for v in result.versions if v.version == version), None)
        metric = result.metric or (performance.metric.value if performance.metric else "")
        figures = PerformanceStatus(
            version=version,
            metric=metric or None,
            value=served.value if served else None,
            threshold=performance.threshold,
            samples=served.samples if served else 0,
            labelled=served.labelled if served else 0,
            window_seconds=result.window_seconds,
            checked_at=result.checked_at,
        )
        if version is None:
            judgement = not_measured(
                Reason.NOT_ENOUGH_LABELS, "no version is serving yet: nothing to judge"
            )
        else:
            judgement = judge(
                metric=metric,
                value=figures.value,
                labelled=figures.labelled or 0,
                threshold=performance.threshold,
                min_samples=performance.min_samples,
                version=version,
            )
    figures.degraded = judgement.degraded
    if judgement.degraded:
        # One episode per version and stretch of degraded checks: it starts one run.
        same = previous is not None and previous.degraded and previous.version == version
        since = previous.degraded_since if same and previous is not None else None
        figures.degraded_since = since or figures.checked_at
    status.performance = figures
    status.conditions = set_condition(
        status.conditions,
        ConditionType.PERFORMANCE_DEGRADED,
        judgement.degraded,
        judgement.reason,
        judgement.message,
        status.observed_generation,
        at,
    )
    return judgement


def _not_yet(
    status: ModelDeploymentStatus, performance: PerformanceMonitoringSpec, at: datetime, what: str
) -> None:
    """Unknown until the first check answers (a condition that is absent says nothing)."""
    if get_condition(status.conditions, ConditionType.PERFORMANCE_DEGRADED) is not None:
        return
    threshold = performance.threshold
    status.conditions = set_condition(
        status.conditions,
        ConditionType.PERFORMANCE_DEGRADED,
        None,
        Reason.PERFORMANCE_NOT_CHECKED,
        f"{what}; performance is judged against {threshold:g} once it answers"
        if threshold is not None
        else what,
        status.observed_generation,
        at,
    )


def forget_series(ref: ObjectRef) -> None:
    """A deleted ModelDeployment's live-performance series go with it (a scrape would
    otherwise show its last value, and the alert on it, until the operator restarts)."""
    labels = {"namespace": ref.namespace, "deployment": ref.name}
    metrics.MODEL_PERFORMANCE.remove_by_labels(labels)
    metrics.PERFORMANCE_DEGRADED.remove_by_labels(labels)


def _export(
    namespace: str,
    name: str,
    model: str,
    status: ModelDeploymentStatus,
    result: PerformanceMeasured | PerformanceFailed,
) -> None:
    if isinstance(result, PerformanceMeasured) and result.metric:
        for version in result.versions:
            if version.value is not None:
                metrics.MODEL_PERFORMANCE.labels(
                    namespace, name, model, version.version, result.metric
                ).set(version.value)
    degraded = status.performance is not None and bool(status.performance.degraded)
    metrics.PERFORMANCE_DEGRADED.labels(namespace, name, model).set(1 if degraded else 0)


def _owned(job: Body | None, body: Body) -> Body | None:
    return job if job is not None and _owns(body["metadata"]["uid"], job) else None


def _owns(uid: str, child: Body) -> bool:
    return any(ref.get("uid") == uid for ref in child["metadata"].get("ownerReferences") or [])


def _conclusion(job: Body) -> Body | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") in ("Complete", "Failed") and condition.get("status") == "True":
            found: Body = condition
            return found
    return None


def _finished(job: Body) -> bool:
    return _conclusion(job) is not None


def _finished_at(job: Body) -> datetime | None:
    conclusion = _conclusion(job)
    text = (conclusion or {}).get("lastTransitionTime")
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None
