"""Recover a TrainingJob's result from the registry when its Job is gone.

A Job deleted by hand, or removed by its TTL while the operator was down, takes the
trainer's termination message with it. The registry still knows: the trainer claimed one
version under the TrainingJob's uid (`Registry.claim_for_job`) and published it with
metadata.json. If that version is visible, the run succeeded and the status is rebuilt
from it; if not (nothing claimed, or claimed but never published), the Job really was
lost. Only reads: recovering never claims, publishes or promotes. S3 errors propagate so
the runtime retries; a missing answer is never read as "failed".
"""

from datetime import datetime
from typing import Any

from ctrain.api import TrainingJobSpec, TrainingJobStatus
from ctrain.api.contracts import ModelMetadata, TrainingSucceeded, succeeded_from_metadata
from ctrain.controller.runtime.context import Context
from ctrain.controller.storage.clients import location
from ctrain.controller.trainingjob.status import job_deleted_status, recovered_status
from ctrain.registry import Registry
from ctrain.registry.errors import VersionNotFound

__all__ = ["status_without_job"]

Body = dict[str, Any]


def status_without_job(
    context: Context, body: Body, spec: TrainingJobSpec, old: TrainingJobStatus, job_name: str
) -> TrainingJobStatus:
    """The final status of a Running TrainingJob whose Job no longer exists."""
    metadata = body["metadata"]
    generation = metadata.get("generation", 1)
    at = context.clock()
    registry = context.storage.registry(location(spec.storage, context.config))
    found = published_by(registry, spec.model, metadata["uid"])
    if found is None:
        return job_deleted_status(old, generation, job_name, at)
    version, published = found
    by = f"TrainingJob {metadata['namespace']}/{metadata['name']}"
    promoted = any(
        change.to_version == version and change.by == by
        for change in registry.champion_history(spec.model)
    )
    summary = summary_of(registry, spec.model, version, published, promoted=promoted)
    return recovered_status(old, generation, job_name, summary, _time(published.created_at), at)


def published_by(registry: Registry, model: str, uid: str) -> tuple[str, ModelMetadata] | None:
    """(version, its metadata) that TrainingJob `uid` published; None when it published
    none (nothing claimed, the claim never published, or published by another writer)."""
    version = registry.job_version(model, uid)
    if version is None:
        return None
    try:
        published = registry.metadata(model, version)
    except VersionNotFound:
        return None  # claimed, then the run died before publishing
    if published.training_job.get("uid") != uid:
        return None  # not this TrainingJob's result, whatever the claim says
    return version, published


def summary_of(
    registry: Registry, model: str, version: str, metadata: ModelMetadata, *, promoted: bool
) -> TrainingSucceeded:
    return succeeded_from_metadata(
        model,
        version,
        registry.artifact_uri(model, version),
        metadata,
        promoted=promoted,
        decision=metadata.decision or "",
    )


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
