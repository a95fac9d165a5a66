"""Publishing a version: its files first, metadata.json last, and never another writer's.

A version becomes visible when its metadata.json exists, so the model and its reference
statistics are uploaded first and metadata.json last, with ``If-None-Match: *``. Before
the first upload and again before metadata.json, the writer checks that the version's
claim is still its own (`ctrain.registry.claims`): a writer that lost the claim writes
nothing. Cleaning up after a failure is ownership-checked too: the files are deleted
only while the claim is still ours and metadata.json is absent or byte-for-byte ours, so
the loser of a race never deletes what the winner wrote. When metadata.json turns out to
be another writer's, nothing is deleted at all: the keys may hold the winner's files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from ctrain.api.contracts import Contract, ModelMetadata, Reference
from ctrain.registry.claims import Claimer
from ctrain.registry.errors import VersionConflict
from ctrain.registry.layout import METADATA_FILE, MODEL_FILE, REFERENCE_FILE, check_version
from ctrain.registry.objects import ConditionFailed

__all__ = ["publish"]

log = logging.getLogger(__name__)


def publish(
    claims: Claimer,
    model: str,
    version: str | int,
    model_bytes: bytes,
    metadata: ModelMetadata,
    reference: Reference,
    *,
    owner: str | None,
    sha256: Callable[[bytes], str],
    now: Callable[[], str],
) -> ModelMetadata:
    """Upload a complete version (see the module docstring); returns metadata as written."""
    store, layout = claims.store, claims.layout
    version = check_version(version)
    if metadata.model_extra:
        raise ValueError(
            f"metadata.json fields not in the contract: {sorted(metadata.model_extra)}"
        )
    metadata_key = layout.key(model, version, METADATA_FILE)
    if store.get_bytes(metadata_key) is not None:
        raise VersionConflict(f"{model} v{version} is already published")
    final = metadata.model_copy(
        update={
            "model": model,
            "version": version,
            "model_file": MODEL_FILE,
            "model_sha256": sha256(model_bytes),
            "created_at": metadata.created_at or now(),
        }
    )
    # Serialize before the first upload: a bad document must not leave objects behind.
    metadata_body = dump(final)
    reference_body = dump(reference)

    def still_ours() -> bool:
        return owner is None or claims.owner(model, version) == owner

    if not still_ours():
        raise VersionConflict(f"{model} v{version} is claimed by another writer")
    written: list[str] = []
    try:
        for name, body in ((MODEL_FILE, model_bytes), (REFERENCE_FILE, reference_body)):
            key = layout.key(model, version, name)
            written.append(key)
            store.put(key, body)
        if not still_ours():
            raise VersionConflict(f"{model} v{version} was claimed by another writer")
        store.put(metadata_key, metadata_body, content_type="application/json",
                  if_none_match=True)  # fmt: skip
    except ConditionFailed as exc:
        if store.get_bytes(metadata_key) == metadata_body:
            return final  # our own PUT, retried by botocore after a lost response
        # metadata.json is another writer's: the files under it may be its too.
        raise VersionConflict(f"{model} v{version} was published by another writer") from exc
    except BaseException:
        _clean_up(claims, model, version, written, metadata_body, still_ours)
        raise
    log.info("published model=%s version=%s sha256=%s", model, version, final.model_sha256)
    return final


def _clean_up(
    claims: Claimer,
    model: str,
    version: str,
    written: list[str],
    metadata_body: bytes,
    still_ours: Callable[[], bool],
) -> None:
    store = claims.store
    metadata_key = claims.layout.key(model, version, METADATA_FILE)
    try:
        current = store.get_bytes(metadata_key)
        if not still_ours() or current not in (None, metadata_body):
            log.warning("not cleaning up %s v%s: no longer ours", model, version)
            return
    except Exception as exc:  # noqa: BLE001 - already failing; the original error is raised
        log.warning("not cleaning up %s v%s: cannot check ownership: %s", model, version, exc)
        return
    # metadata.json too, if our PUT landed but its response was lost.
    store.delete_quietly([*written, *([metadata_key] if current is not None else [])])


def dump(document: Contract) -> bytes:
    return json.dumps(document.to_wire(), indent=2, sort_keys=True).encode()
