"""Reconcile one TrainingJob: ensure its Job, read the outcome, write status, post Events.

A pass reads the TrainingJob, its Job and the Job's pods from the runtime's caches (the
watch keeps them current, and every Job or pod event enqueues the TrainingJob), creates
the Job when it is absent, and writes the status computed by `status`. Two decisions are
final and are taken on a fresh read, never on a cache: the outcome of a concluded Job
(the pods' termination messages) and "the Job was deleted" (then `recover` asks the
registry whether the run published its version before the Job went). A finished
TrainingJob is never looked at again.

Where later work plugs in: `_conditions_events` (which transitions are worth an Event),
`reject` (how an invalid spec or a refused Job reads in status).
"""

import logging
from typing import Any

from pydantic import ValidationError

from ctrain.api import ConditionType, Reason, TrainingJobPhase, TrainingJobSpec, TrainingJobStatus
from ctrain.api.common import validation_message
from ctrain.controller import health, metrics
from ctrain.controller.conditions import changed_conditions
from ctrain.controller.kube import JOBS, PODS, TRAININGJOBS
from ctrain.controller.runtime.context import Context, Rejected
from ctrain.controller.runtime.engine import Kind
from ctrain.controller.runtime.owners import controlled_by, labelled
from ctrain.controller.runtime.status import Event, post_events, write_status
from ctrain.controller.runtime.store import ObjectRef
from ctrain.controller.storage.clients import location
from ctrain.controller.storage.facts import ModelFact
from ctrain.controller.trainingjob.builders import TRAININGJOB_LABEL, build_job, job_name
from ctrain.controller.trainingjob.recover import status_without_job
from ctrain.controller.trainingjob.status import (
    compute_status,
    finished_job,
    invalid_spec_status,
    is_terminal,
)
from ctrain.registry import CHAMPION, LATEST

__all__ = ["KIND", "reconcile", "reject"]

log = logging.getLogger("ctrain.operator")
Body = dict[str, Any]


def reconcile(context: Context, body: Body) -> float | None:
    old = TrainingJobStatus.parse(body.get("status") or {})
    if is_terminal(old):
        return None
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    generation = metadata.get("generation", 1)
    try:
        spec = TrainingJobSpec.parse(body.get("spec") or {})
    except ValidationError as error:
        raise Rejected(Reason.INVALID_SPEC, validation_message(error)) from error
    refused = context.config.endpoint_refused(location(spec.storage, context.config).endpoint.url)
    if refused:
        raise Rejected(Reason.STORAGE_FORBIDDEN, refused)
    job_id = job_name(name)
    job = _owned_job(context.store(JOBS).get(namespace, job_id), body)
    if job is None and old.job_name and old.phase == "Running":
        job = _owned_job(context.remember(JOBS, context.kube.get(JOBS, namespace, job_id)), body)
        if job is None:
            final = status_without_job(context, body, spec, old, job_id)
            _write(context, body, old, final)
            if final.phase == TrainingJobPhase.SUCCEEDED:
                _published(context, spec, promoted=bool(final.promoted))
            return None
    if job is None:
        job = _owned_job(_create_job(context, body, spec), body)
    if finished_job(job):
        # The outcome is final: read the pods as they are now, not as last watched.
        pods = context.kube.list(PODS, namespace, labels=f"{TRAININGJOB_LABEL}={name}")
    else:
        pods = context.store(PODS).owned_by(ObjectRef("TrainingJob", namespace, name))
    owned = [p for p in pods if _owned_by(p, job)]
    status = compute_status(
        old,
        job,
        owned,
        generation=generation,
        job_name=job_id,
        active_deadline_seconds=spec.active_deadline_seconds,
        at=context.clock(),
    )
    _write(context, body, old, status)
    if status.phase == TrainingJobPhase.SUCCEEDED and old.phase != status.phase:
        _published(context, spec, promoted=bool(status.promoted))
    return None


def _published(context: Context, spec: TrainingJobSpec, *, promoted: bool) -> None:
    """A new version changes what `latest` (and, promoted, `champion`) resolves to: the
    objects following them learn it now rather than at the storage watch's next read."""
    where = location(spec.storage, context.config)
    context.storage.refresh(ModelFact(where, spec.model, LATEST))
    if promoted:
        context.storage.refresh(ModelFact(where, spec.model, CHAMPION))


def _create_job(context: Context, body: Body, spec: TrainingJobSpec) -> Body | None:
    manifest = build_job(body, spec, context.config)
    metadata = manifest["metadata"]
    created = context.remember(JOBS, context.kube.create(JOBS, manifest))
    if created is not None:
        metrics.TRAININGS_STARTED.inc()
        log.info("trainingjob %s/%s: created Job %s", *_where(body), metadata["name"])
        return created
    # It existed already (a pass repeated after a restart): read it.
    return context.remember(JOBS, context.kube.get(JOBS, metadata["namespace"], metadata["name"]))


def _where(body: Body) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def _owned_job(job: Body | None, body: Body) -> Body | None:
    """The Job, if this TrainingJob controls it (a Job of that name made by someone else,
    or for a deleted and recreated TrainingJob of the same name, is not its outcome)."""
    if job is None:
        return None
    uid = body["metadata"]["uid"]
    owners = job["metadata"].get("ownerReferences") or []
    return job if any(ref.get("uid") == uid for ref in owners) else None


def _owned_by(pod: Body, job: Body | None) -> bool:
    if job is None:
        return False
    uid = job["metadata"]["uid"]
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])


def reject(context: Context, body: Body, rejected: Rejected) -> None:
    old = TrainingJobStatus.parse(body.get("status") or {})
    if is_terminal(old):
        return
    generation = body["metadata"].get("generation", 1)
    status = invalid_spec_status(
        old, generation, rejected.message, rejected.reason, at=context.clock()
    )
    _write(context, body, old, status)


def _write(context: Context, body: Body, old: TrainingJobStatus, status: TrainingJobStatus) -> None:
    status = health.trainingjob(status, context.clock())
    if write_status(context, TRAININGJOBS, body, status) is None:
        return  # deleted meanwhile
    events: list[Event] = []
    if old.phase != status.phase:
        if is_terminal(status):
            metrics.TRAININGS_FINISHED.labels(str(status.phase)).inc()
            if status.promoted:
                metrics.PROMOTIONS.labels(body["spec"]["model"]).inc()
        warning = status.phase == "Failed"
        events.append((str(status.phase), status.message or "", warning))
    events.extend(_conditions_events(old, status))
    post_events(context, body, events)


def _conditions_events(old: TrainingJobStatus, status: TrainingJobStatus) -> list[Event]:
    events: list[Event] = []
    for condition in changed_conditions(old.conditions, status.conditions):
        if condition.type in _PHASE_CONDITIONS:
            continue  # the phase Event above already tells this story
        if condition.status == "Unknown":
            continue
        warning = condition.status == "False" and condition.type != ConditionType.BLESSED
        message = f"{condition.type}={condition.status}: {condition.message}"
        events.append((condition.reason, message, warning))
    return events


_PHASE_CONDITIONS = {ConditionType.READY, *health.DERIVED}

KIND = Kind(
    resource=TRAININGJOBS,
    reconcile=reconcile,
    reject=reject,
    workers=8,
    children={JOBS: controlled_by("TrainingJob"), PODS: labelled(TRAININGJOB_LABEL)},
)
