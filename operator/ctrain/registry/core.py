"""The model registry: versioned artifacts and the champion in an S3 bucket.

It exists so that every role (trainer, server, operator, `ctrain models`) reads and writes
models the same way, with the guarantees DESIGN.md promises:

- Version numbers are unique and increasing even with concurrent trainers, and one
  TrainingJob registers at most one version (`ctrain.registry.claims`).
- A version is visible only once complete, and a writer never writes or deletes files of
  a version it does not own (`ctrain.registry.publishing`).
- Loading verifies the sha256 recorded in metadata.json and deserializes with skops and an
  explicit list of trusted types (`ctrain.registry.trust`), never with pickle.
- The champion is the last line of ``aliases/champion.log``; every move is a
  compare-and-set on that log, names the version it replaced and keeps the chain without
  gaps even when writers race (`ctrain.registry.champion`). ``aliases/champion`` is a copy.
- A version that failed in production is marked rejected (``versions/<n>/rejected.json``);
  ``champion`` and ``latest`` never resolve to it, until it is promoted by hand.

Conditional writes that must hold on stores that check, then act (moto's server) are read
back after ``settle_seconds``; on AWS S3, MinIO or Ceph the pause only confirms. Transient
S3 errors are retried by botocore (standard retry mode, see `ctrain.storage`); whatever
still fails is raised as a `RegistryError` subclass (see `ctrain.registry.errors`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic

from ctrain.api.common import format_time
from ctrain.api.contracts import Contract, ModelMetadata, Reference, Rejection
from ctrain.registry import monitoring
from ctrain.registry.champion import ChampionChange, Champions
from ctrain.registry.claims import Claimer, JobClaim
from ctrain.registry.errors import (
    ChampionMoved,
    IntegrityError,
    InvalidReference,
    VersionConflict,
    VersionNotFound,
)
from ctrain.registry.layout import (
    CHAMPION,
    LATEST,
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    REJECTED_FILE,
    Layout,
    check_version,
)
from ctrain.registry.objects import ConditionFailed, ObjectStore
from ctrain.registry.publishing import dump, publish
from ctrain.registry.trust import loads_trusted
from ctrain.storage import S3Client

__all__ = ["ChampionChange", "JobClaim", "LoadedModel", "Registry", "sha256_hex"]

log = logging.getLogger(__name__)

_MOVE_ATTEMPTS = 10


def sha256_hex(data: bytes) -> str:
    """The hex sha256 digest recorded as ``modelSha256``."""
    return hashlib.sha256(data).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class LoadedModel:
    """A verified, deserialized model with the metadata it was published with."""

    model: str
    version: str
    metadata: ModelMetadata
    estimator: Any


class Registry:
    """Versioned models under ``s3://<bucket>/<prefix>/<model>/`` (see the module docstring)."""

    def __init__(
        self,
        s3_client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_claim_attempts: int = 1000,
        settle_seconds: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        encryption: Mapping[str, str] | None = None,
    ) -> None:
        self._store = ObjectStore(s3_client, bucket, encryption)
        self.layout = Layout(bucket, prefix)
        self._clock = clock

        def settle() -> None:
            if settle_seconds > 0:
                sleep(settle_seconds)

        self._settle = settle
        self._champs = Champions(
            self._store, self.layout, self._now, self._settle, self.rejected_versions
        )
        self._claims = Claimer(
            self._store, self.layout, self._now, self._settle, max_claim_attempts
        )

    @property
    def bucket(self) -> str:
        return self.layout.bucket

    @property
    def prefix(self) -> str:
        return self.layout.prefix

    def artifact_uri(self, model: str, version: str | int) -> str:
        """``s3://bucket/prefix/model/versions/<n>/``, as reported in status."""
        return self.layout.artifact_uri(model, version)

    # Reading ---------------------------------------------------------------------------

    def list_versions(self, model: str) -> list[str]:
        """Visible versions (those with metadata.json), oldest first; rejected ones too."""
        return sorted(self._files(model, METADATA_FILE), key=int)

    def rejected_versions(self, model: str) -> set[str]:
        """Versions marked rejected."""
        return self._files(model, REJECTED_FILE)

    def metadata(self, model: str, version: str | int) -> ModelMetadata:
        """The parsed metadata.json of a visible version; VersionNotFound otherwise."""
        version = check_version(version)
        data = self._store.get_bytes(self.layout.key(model, version, METADATA_FILE))
        if data is None:
            raise VersionNotFound(f"model {model!r} has no version {version}")
        return _parse(ModelMetadata, data, f"metadata.json of {model} v{version}")

    def reference(self, model: str, version: str | int) -> Reference:
        """The parsed reference.json (training-data statistics) of a visible version."""
        version = check_version(version)
        self._require_visible(model, version)
        data = self._store.get_bytes(self.layout.key(model, version, REFERENCE_FILE))
        if data is None:
            raise IntegrityError(f"{model} v{version} is published but has no reference.json")
        return _parse(Reference, data, f"reference.json of {model} v{version}")

    def rejected(self, model: str, version: str | int) -> Rejection | None:
        """Why ``version`` was rejected, or None when it is not."""
        key = self.layout.key(model, check_version(version), REJECTED_FILE)
        data = self._store.get_bytes(key)
        return None if data is None else _parse(Rejection, data, f"{key}")

    def champion(self, model: str) -> str | None:
        """The version the champion log ends at (rejected or not); None if there is none."""
        return self._champs.current(self._champs.read_log(model), model)

    def champion_history(self, model: str) -> list[ChampionChange]:
        """Every champion move, oldest first."""
        return self._champs.read_log(model).changes

    def previous_champion(self, model: str) -> str | None:
        """The latest earlier champion that is not rejected (the target of a rollback)."""
        history = self._champs.read_log(model)
        current = self._champs.current(history, model)
        return self._champs.last_good(history, model, exclude=current)

    def resolve(self, model: str, ref: str | int) -> str:
        """Turn ``champion``, ``latest`` or ``<n>`` into a visible version number.

        ``champion`` is the latest champion that is not rejected; ``latest`` the highest
        visible version that is not rejected. A number resolves whatever its standing.
        """
        text = str(ref).strip()
        if text == CHAMPION:
            champion = self._champs.last_good(self._champs.read_log(model), model, exclude=None)
            if champion is None:
                raise VersionNotFound(f"model {model!r} has no champion that is not rejected")
            self._require_visible(model, champion)
            return champion
        if text == LATEST:
            good = [v for v in self.list_versions(model) if v not in self.rejected_versions(model)]
            if not good:
                raise VersionNotFound(f"model {model!r} has no versions that are not rejected")
            return good[-1]
        try:
            version = check_version(text)
        except InvalidReference as exc:
            raise InvalidReference(
                f"invalid version reference {text!r}: use champion, latest or a version number"
            ) from exc
        self._require_visible(model, version)
        return version

    def load_model(self, model: str, version: str | int) -> Any:
        """Load model.skops after checking its sha256 and the types it contains."""
        return self._load(model, check_version(version)).estimator

    def load(self, model: str, ref: str | int) -> LoadedModel:
        """Resolve ``ref`` and load that version together with its metadata."""
        return self._load(model, self.resolve(model, ref))

    def monitoring_history(
        self, model: str, namespace: str, deployment: str
    ) -> list[dict[str, Any]]:
        """What the operator observed on a deployment over time, oldest first."""
        key = monitoring.monitoring_key(self.layout, model, namespace, deployment)
        return monitoring.history(self._store, key)

    # Writing versions ------------------------------------------------------------------

    def reserve_version(self, model: str, *, owner: str = "") -> str:
        """Claim the next version number; unique even when trainers race for it."""
        return self._claims.claim_version(model, owner=owner)

    def claim_for_job(self, model: str, uid: str) -> JobClaim:
        """The one version TrainingJob ``uid`` may publish (claimed before, or now)."""
        return self._claims.claim_for_job(model, uid)

    def job_version(self, model: str, uid: str) -> str | None:
        """The version TrainingJob ``uid`` claimed (published or not); None if it claimed
        none. Only reads: the operator asks it when the Job that knew the answer is gone."""
        return self._claims.job_version(model, uid)

    def owner(self, model: str, version: str | int) -> str | None:
        """Who claimed ``version`` (a TrainingJob uid)."""
        return self._claims.owner(model, str(version))

    def publish(
        self,
        model: str,
        version: str | int,
        model_bytes: bytes,
        metadata: ModelMetadata,
        reference: Reference,
        *,
        owner: str | None = None,
    ) -> ModelMetadata:
        """Upload a complete version, metadata.json last (`ctrain.registry.publishing`).

        ``model``, ``version``, ``modelFile``, ``modelSha256`` (and ``createdAt`` if unset)
        are set by the registry. With ``owner``, the version's claim must be that owner's.
        Fields the model does not declare are refused: what the registry writes is the
        contract.
        """
        return publish(self._claims, model, version, model_bytes, metadata, reference,
                       owner=owner, sha256=sha256_hex, now=self._now)  # fmt: skip

    # Moving the champion ---------------------------------------------------------------

    def promote(
        self, model: str, version: str | int, *, expected: str | None, reason: str, by: str = ""
    ) -> ChampionChange | None:
        """Compare-and-set: make ``version`` champion if the champion still is ``expected``.

        Raises `ChampionMoved` otherwise. Returns None when ``version`` already is champion.
        """
        version = check_version(version)
        self._require_visible(model, version)
        return self._champs.move(model, expected, version, reason=reason, by=by, action="promote")

    def demote(self, model: str, version: str | int, *, reason: str, by: str) -> ChampionChange:
        """Compare-and-set: move the champion from ``version`` back to the latest earlier
        champion that is not rejected. Raises `ChampionMoved` if ``version`` is not the
        champion, VersionNotFound if there is nothing to go back to."""
        version = check_version(version)
        history = self._champs.read_log(model)
        current = self._champs.current(history, model)
        if current != version:
            raise ChampionMoved(version, current)
        target = self._champs.last_good(history, model, exclude=version)
        if target is None:
            raise VersionNotFound(f"model {model!r} has no earlier champion that is not rejected")
        change = self._champs.move(model, version, target, reason=reason, by=by, action="demote")
        assert change is not None  # target != version
        return change

    def reject(self, model: str, version: str | int, *, reason: str, by: str) -> Rejection:
        """Mark ``version`` rejected (idempotent: a second call keeps the first reason)."""
        version = check_version(version)
        self._require_visible(model, version)
        mark = Rejection(reason=reason, by=by, time=self._now())
        key = self.layout.key(model, version, REJECTED_FILE)
        try:
            self._store.put(key, dump(mark), content_type="application/json", if_none_match=True)
        except ConditionFailed:
            existing = self.rejected(model, version)
            if existing is not None:
                return existing
        log.info("rejected model=%s version=%s by=%s reason=%s", model, version, by, reason)
        return mark

    def set_champion(
        self, model: str, version: str | int, reason: str, *, by: str = ""
    ) -> ChampionChange | None:
        """Make ``version`` the champion, whatever it is now (by hand: `ctrain models`).

        A rejected version is un-rejected: the log line says so (``unrejected``) and the
        mark is removed. Returns None when it already is the champion and not rejected.
        """
        version = check_version(version)
        self._require_visible(model, version)
        for _ in range(_MOVE_ATTEMPTS):
            rejection = self.rejected(model, version)
            current = self.champion(model)
            if current == version and rejection is None:
                return None
            text = reason
            if rejection is not None:
                text = f"{reason} (un-rejected; it was rejected: {rejection.reason})"
            action = "unreject" if current == version else "promote"
            try:
                change = self._champs.move(
                    model,
                    current,
                    version,
                    reason=text,
                    by=by,
                    action=action,
                    unrejected=rejection is not None,
                    allow_same=True,
                )
            except ChampionMoved:
                continue
            if rejection is not None:
                self._store.delete_quietly([self.layout.key(model, version, REJECTED_FILE)])
            return change
        raise VersionConflict(f"could not move the champion of {model!r}: too many writers")

    def rollback(
        self, model: str, reason: str, *, to: str | int | None = None, by: str = ""
    ) -> ChampionChange:
        """Make ``to`` (default: the previous champion that is not rejected) the champion."""
        target = self.previous_champion(model) if to is None else check_version(to)
        if target is None:
            raise VersionNotFound(f"model {model!r} has no previous champion to roll back to")
        self._require_visible(model, target)
        current = self.champion(model)
        if current == target:
            raise VersionConflict(f"v{target} of {model!r} already is the champion")
        change = self._champs.move(model, current, target, reason=reason, by=by, action="rollback")
        assert change is not None
        return change

    def append_monitoring(
        self,
        model: str,
        namespace: str,
        deployment: str,
        record: dict[str, Any],
        *,
        limit: int = monitoring.DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """Add one observation to a deployment's bounded history (`ctrain.registry.monitoring`)."""
        key = monitoring.monitoring_key(self.layout, model, namespace, deployment)
        return monitoring.append(
            self._store, key, record, now=self._clock, format_time=format_time, limit=limit
        )

    # Internals -------------------------------------------------------------------------

    def _now(self) -> str:
        return format_time(self._clock())

    def _files(self, model: str, name: str) -> set[str]:
        versions = set()
        for key in self._store.keys(self.layout.versions_root(model)):
            parsed = self.layout.version_of(model, key)
            if parsed is not None and parsed[1] == name:
                versions.add(parsed[0])
        return versions

    def _load(self, model: str, version: str) -> LoadedModel:
        metadata = self.metadata(model, version)
        expected = metadata.model_sha256
        if not isinstance(expected, str) or len(expected) != 64:
            raise IntegrityError(f"metadata.json of {model} v{version} has no valid modelSha256")
        data = self._store.get_bytes(self.layout.key(model, version, MODEL_FILE))
        if data is None:
            raise IntegrityError(f"{model} v{version} is published but model.skops is missing")
        actual = sha256_hex(data)
        if actual != expected:
            raise IntegrityError(
                f"model.skops of {model} v{version} has sha256 {actual}, metadata.json "
                f"records {expected}: refusing to load a modified or corrupt model"
            )
        return LoadedModel(model, version, metadata, loads_trusted(data))

    def _require_visible(self, model: str, version: str) -> None:
        if not self._store.exists(self.layout.key(model, version, METADATA_FILE)):
            raise VersionNotFound(f"model {model!r} has no version {version}")


_C = TypeVar("_C", bound=Contract)


def _parse(contract: type[_C], data: bytes, what: str) -> _C:
    try:
        parsed = json.loads(data)
    except ValueError as exc:
        raise IntegrityError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise IntegrityError(f"{what} is not a JSON object")
    try:
        return contract.parse(parsed)
    except pydantic.ValidationError as exc:
        raise IntegrityError(f"{what} does not hold to its contract: {exc}") from exc
