"""A bounded history of what the operator observed on a deployment, kept in the registry.

The operator's status holds only the latest drift (and live performance) of a
ModelDeployment; reports and dashboards need it over time, and status must stay small.
So each observation is appended as one JSON line to
``<prefix>/<model>/monitoring/<namespace>/<deployment>.jsonl``, keeping the newest
``limit`` lines. S3 has no append: the object is read, extended and written back with
``If-Match`` on its ETag (``If-None-Match: *`` when it is new), and a lost race is
retried, so concurrent writers never drop each other's lines on a store whose
conditional writes are atomic (AWS S3, MinIO, Ceph; moto's are check-then-act).

A record is a JSON object; the writer sets ``time`` (RFC 3339, UTC) when it is missing.
The operator writes e.g. ``{"time", "version", "score", "samples", "detected",
"features": {name: psi}}`` (docs/contracts.md, "Monitoring history").
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ctrain.registry.errors import IntegrityError, InvalidReference, VersionConflict
from ctrain.registry.layout import Layout
from ctrain.registry.objects import ConditionFailed, ObjectStore

__all__ = ["DEFAULT_LIMIT", "MAX_RECORD_BYTES", "append", "history", "monitoring_key"]

# One day of records at the default drift interval of 60 s.
DEFAULT_LIMIT = 1440
# A record is a summary (a score per feature), never raw inputs.
MAX_RECORD_BYTES = 16 * 1024
_ATTEMPTS = 10
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def monitoring_key(layout: Layout, model: str, namespace: str, deployment: str) -> str:
    """The key of one deployment's history; names are DNS labels, so no key can escape."""
    for what, name in (("namespace", namespace), ("deployment", deployment)):
        if len(name) > 63 or not _NAME.match(name):
            raise InvalidReference(f"invalid {what} {name!r}: must be a DNS-1123 label")
    return f"{layout.model_root(model)}monitoring/{namespace}/{deployment}.jsonl"


def append(
    store: ObjectStore,
    key: str,
    record: dict[str, Any],
    *,
    now: Callable[[], datetime],
    format_time: Callable[[datetime], str],
    limit: int = DEFAULT_LIMIT,
) -> dict[str, Any]:
    """Append ``record`` to the history at ``key``, keeping the newest ``limit`` records.

    Returns the record as written (with ``time``).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if not isinstance(record, dict):
        raise TypeError("a monitoring record is a JSON object")
    written = {"time": format_time(now()), **record}
    line = json.dumps(written, sort_keys=True, allow_nan=False).encode()
    if len(line) > MAX_RECORD_BYTES:
        raise ValueError(f"a monitoring record must stay under {MAX_RECORD_BYTES} bytes")
    for attempt in range(_ATTEMPTS):
        current = store.get(key)
        try:
            if current is None:
                store.put(key, line + b"\n", content_type="application/x-ndjson",
                          if_none_match=True)  # fmt: skip
            else:
                body, etag = current
                kept = [old for old in body.splitlines() if old.strip()]
                kept = kept[max(0, len(kept) - (limit - 1)) :]
                new_body = b"\n".join([*kept, line]) + b"\n"
                store.put(key, new_body, content_type="application/x-ndjson", if_match=etag)
            return written
        except ConditionFailed:
            # Another writer won the race: back off with jitter and read its version.
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
    raise VersionConflict(f"could not append to {key}: too many concurrent writers")


def history(store: ObjectStore, key: str) -> list[dict[str, Any]]:
    """Every record at ``key``, oldest first; an empty list when there is none yet."""
    data = store.get_bytes(key)
    if data is None:
        return []
    records = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except ValueError as exc:
            raise IntegrityError(f"{key}, line {number}: not JSON ({exc})") from exc
        if not isinstance(parsed, dict):
            raise IntegrityError(f"{key}, line {number}: not a JSON object")
        records.append(parsed)
    return records
