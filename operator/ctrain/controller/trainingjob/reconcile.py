"""Reconcile one TrainingJob: ensure its Job, read the outcome, write status, post Events."""

import logging
from typing import Any

from pydantic import ValidationError

from ctrain.api import ConditionType, TrainingJob, TrainingJobSpec
from ctrain.api.common import validation_message
from ctrain.controller import metrics
from ctrain.controller.conditions import changed_conditions
from ctrain.controller.config import OperatorConfig
from ctrain.controller.kube import Kube
from ctrain.controller.trainingjob.builders import TRAININGJOB_LABEL, build_job, job_name
from ctrain.controller.trainingjob.status import compute_status, invalid_spec_status, is_terminal

__all__ = ["PLURAL", "reconcile"]

log = logging.getLogger("ctrain.operator")
PLURAL = TrainingJob.PLURAL


def reconcile(kube: Kube, config: OperatorConfig, namespace: str, name: str) -> None:
    with kube.locked(PLURAL, namespace, name) as body:
        if body is not None:
            _reconcile_locked(kube, config, body)


def _reconcile_locked(kube: Kube, config: OperatorConfig, body: dict[str, Any]) -> None:
    old = body.get("status") or {}
    if is_terminal(old):
        return
    generation = body["metadata"].get("generation", 1)
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        spec = TrainingJobSpec.parse(body.get("spec") or {})
    except ValidationError as error:
        message = validation_message(error)
        _write(kube, body, old, invalid_spec_status(old, generation, message))
        return
    job_id = job_name(name)
    job = kube.read_or_none(kube.batch.read_namespaced_job, job_id, namespace)
    if job is None and old.get("jobName") and old.get("phase") == "Running":
        status = {**old}
        status.update(invalid_spec_status(old, generation, "the training Job was deleted"))
        status["message"] = f"JobDeleted: Job {job_id} was deleted before it finished"
        _write(kube, body, old, status)
        return
    if job is None:
        manifest = build_job(body, spec, config)
        if kube.create(kube.batch.create_namespaced_job, namespace, manifest):
            metrics.TRAININGS_STARTED.inc()
            log.info("trainingjob %s/%s: created Job %s", namespace, name, job_id)
        job = kube.read_or_none(kube.batch.read_namespaced_job, job_id, namespace)
    pods = kube.raw(
        kube.core.list_namespaced_pod, namespace, label_selector=f"{TRAININGJOB_LABEL}={name}"
    )["items"]
    owned = [p for p in pods if _owned_by(p, job)]
    status = compute_status(
        old,
        job,
        owned,
        generation=generation,
        job_name=job_id,
        active_deadline_seconds=spec.active_deadline_seconds,
    )
    _write(kube, body, old, status)


def _owned_by(pod: dict[str, Any], job: dict[str, Any] | None) -> bool:
    if job is None:
        return False
    uid = job["metadata"]["uid"]
    return any(ref.get("uid") == uid for ref in pod["metadata"].get("ownerReferences") or [])


def _write(kube: Kube, body: dict[str, Any], old: dict[str, Any], status: dict[str, Any]) -> None:
    if not kube.patch_status(PLURAL, body, status):
        return
    if old.get("phase") != status.get("phase"):
        if is_terminal(status):
            metrics.TRAININGS_FINISHED.labels(str(status["phase"])).inc()
            if status.get("promoted"):
                metrics.PROMOTIONS.labels(body["spec"]["model"]).inc()
        warning = status.get("phase") == "Failed"
        kube.event(body, str(status.get("phase")), status.get("message") or "", warning=warning)
    for condition in changed_conditions(old.get("conditions"), status.get("conditions") or []):
        if condition["type"] == ConditionType.READY:
            continue  # the phase Event above already tells this story
        if condition["status"] == "Unknown":
            continue
        warning = condition["status"] == "False" and condition["type"] != ConditionType.BLESSED
        kube.event(
            body,
            condition["reason"],
            f"{condition['type']}={condition['status']}: {condition['message']}",
            warning=warning,
        )
