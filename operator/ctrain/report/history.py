"""A model's history from the registry as plain data: versions, champions, rejections.

One reader for ``ctrain models list`` and the report, so both say the same thing. A
version is *rejected* when the registry says so: ``Registry.rejected(model, version)``
where the registry has it, or a ``rejected`` entry in metadata.json. Both are read
defensively (a bool, a reason string, or an object with a ``reason``), because the
rejection record is younger than many registries.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ctrain.registry import ChampionChange, Registry

__all__ = ["ModelHistory", "VersionRecord", "key_metric", "load_history", "rejection"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionRecord:
    """One published version as people read it."""

    version: str
    created_at: str | None
    metrics: dict[str, float]
    primary_metric: str | None
    blessed: bool
    champion: bool
    rejected: bool
    rejected_reason: str | None
    training_job: str | None
    estimator: str | None

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "version": self.version,
            "createdAt": self.created_at,
            "metrics": self.metrics,
            "primaryMetric": self.primary_metric,
            "blessed": self.blessed,
            "champion": self.champion,
            "rejected": self.rejected,
            "trainingJob": self.training_job,
            "estimator": self.estimator,
        }
        if self.rejected:
            document["rejectedReason"] = self.rejected_reason
        return document


@dataclass(frozen=True)
class ModelHistory:
    """Every version of a model, oldest first, with the champion's moves."""

    model: str
    versions: list[VersionRecord]
    champion: str | None
    changes: list[ChampionChange] = field(default_factory=list)

    @property
    def key_metric(self) -> str | None:
        return key_metric([{"primaryMetric": v.primary_metric, "metrics": v.metrics}
                           for v in self.versions])  # fmt: skip

    def metric_names(self) -> list[str]:
        """The key metric first, then every other metric in first-seen order."""
        names = [self.key_metric] if self.key_metric else []
        for record in self.versions:
            names += [name for name in record.metrics if name not in names]
        return names


def key_metric(documents: Sequence[Mapping[str, Any]]) -> str | None:
    """The newest version's ``primaryMetric``, else the first metric any version has."""
    for doc in reversed(documents):
        if isinstance(doc.get("primaryMetric"), str):
            return str(doc["primaryMetric"])
    for doc in documents:
        for name in doc.get("metrics") or {}:
            return str(name)
    return None


def _reason_of(mark: Any) -> tuple[bool, str | None]:
    if not mark:
        return False, None
    if isinstance(mark, str):
        return True, mark
    if isinstance(mark, Mapping):
        reason = mark.get("reason")
        return True, None if reason is None else str(reason)
    reason = getattr(mark, "reason", None)
    return True, None if reason is None else str(reason)


def rejection(
    registry: Registry, model: str, version: str, metadata: Mapping[str, Any]
) -> tuple[bool, str | None]:
    """(rejected, reason) of a version, from the registry's record or metadata.json."""
    reader = getattr(registry, "rejected", None)
    if callable(reader):
        try:
            mark = reader(model, version)
        except TypeError as exc:
            # A registry whose `rejected` takes other arguments: metadata.json still tells.
            log.debug("Registry.rejected(model, version) not supported: %s", exc)
        else:
            rejected, reason = _reason_of(mark)
            if rejected:
                return rejected, reason
    return _reason_of(metadata.get("rejected"))


def _numbers(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        return {}
    return {str(k): float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _training_job(doc: Mapping[str, Any]) -> str | None:
    job = doc.get("trainingJob")
    if isinstance(job, Mapping) and job.get("name"):
        namespace = job.get("namespace")
        return f"{namespace}/{job['name']}" if namespace else str(job["name"])
    return None


def load_history(registry: Registry, model: str) -> ModelHistory:
    """Read every visible version's metadata, the champion and its log."""
    versions = registry.list_versions(model)
    champion = registry.champion(model)
    records = []
    for version in versions:
        doc = registry.metadata(model, version)
        rejected, reason = rejection(registry, model, version, doc)
        estimator = doc.get("estimator")
        records.append(
            VersionRecord(
                version=version,
                created_at=doc.get("createdAt"),
                metrics=_numbers(doc.get("metrics")),
                primary_metric=doc.get("primaryMetric"),
                blessed=bool(doc.get("blessed")),
                champion=version == champion,
                rejected=rejected,
                rejected_reason=reason,
                training_job=_training_job(doc),
                estimator=estimator.get("type") if isinstance(estimator, Mapping) else None,
            )
        )
    return ModelHistory(model, records, champion, registry.champion_history(model))
