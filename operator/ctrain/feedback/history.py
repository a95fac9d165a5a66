"""performance.json: a version's live performance over time, bounded.

The live-performance pod appends one point per version and check. Status holds only the
latest; reports and `ctrain models` need the history. Two ModelDeployments of one model
may check at the same time, so the append is a read-modify-write guarded by the ETag
(`If-Match`, or `If-None-Match: *` for a new document) and retried on a lost race,
like the registry's monitoring history. Written with the server-side encryption every
object ctrain writes gets (`--sse`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

import pydantic

from ctrain.api.contracts import PerformanceHistory, PerformancePoint
from ctrain.feedback.layout import performance_key
from ctrain.registry import IntegrityError, Layout, VersionConflict
from ctrain.registry.objects import ConditionFailed, ObjectStore
from ctrain.storage import S3Client

__all__ = ["DEFAULT_HISTORY_LIMIT", "append_point", "read_history"]

# A week of points at the default interval of 300 s.
DEFAULT_HISTORY_LIMIT = 2016
_ATTEMPTS = 10


def read_history(s3: S3Client, layout: Layout, model: str, version: str) -> PerformanceHistory:
    """The version's history, empty when it was never measured."""
    found = ObjectStore(s3, layout.bucket).get(performance_key(layout, model, version))
    if found is None:
        return PerformanceHistory(model=model, version=version)
    return _parse(found[0], model, version)


def append_point(
    s3: S3Client,
    layout: Layout,
    model: str,
    version: str,
    point: PerformancePoint,
    *,
    limit: int = DEFAULT_HISTORY_LIMIT,
    encryption: Mapping[str, str] | None = None,
) -> PerformanceHistory:
    """Add `point`, keeping the newest `limit` points; returns the document as written."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    store = ObjectStore(s3, layout.bucket)
    key = performance_key(layout, model, version)
    for attempt in range(_ATTEMPTS):
        found = store.get(key)
        current = PerformanceHistory(model=model, version=version)
        if found is not None:
            current = _parse(found[0], model, version)
        points = [*current.history, point][-limit:]
        document = PerformanceHistory(model=model, version=version, history=points)
        body = document.model_dump_json(by_alias=True, indent=1).encode()
        try:
            store.put(
                key,
                body,
                content_type="application/json",
                encryption=encryption,
                if_none_match=found is None,
                if_match=None if found is None else found[1],
            )
            return document
        except ConditionFailed:
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # another writer won
    raise VersionConflict(f"could not append to {key}: too many concurrent writers")


def _parse(data: bytes, model: str, version: str) -> PerformanceHistory:
    try:
        return PerformanceHistory.parse_json(data)
    except pydantic.ValidationError as exc:
        raise IntegrityError(
            f"performance.json of {model} v{version} does not hold to its contract: {exc}"
        ) from exc
