"""The model registry: versioned artifacts and the champion alias in an S3 bucket.

It exists so that every role (trainer, server, operator, `ctrain models`) reads and writes
models the same way, with the guarantees DESIGN.md promises:

- Version numbers are unique and increasing even with concurrent trainers: a trainer
  claims ``versions/<n>/.claim`` with a conditional PUT (``If-None-Match: *``), which S3,
  MinIO and Ceph apply atomically; on 412 it tries ``n+1``. The claim carries a random
  token that is read back, which also settles a PUT retried by botocore after a lost
  response, and narrows the window on stores whose conditional PUT is check-then-act
  (moto's server). metadata.json is itself written with ``If-None-Match: *``, so even
  then two writers can never both publish one version.
- A version is visible only once complete: model.skops and reference.json are written
  first and metadata.json last; a failed publish deletes what it wrote.
- Loading verifies the sha256 recorded in metadata.json and deserializes with skops and an
  explicit list of trusted types (`ctrain.registry.trust`), never with pickle.
- Champion moves are recorded in ``aliases/champion.log`` (JSON lines), appended with
  optimistic concurrency (``If-Match`` on the ETag), so rollbacks know the history.

Transient S3 errors are retried by botocore (standard retry mode, see `ctrain.storage`);
whatever still fails is raised as a `RegistryError` subclass (see `ctrain.registry.errors`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ctrain.registry import monitoring
from ctrain.registry.errors import (
    IntegrityError,
    InvalidReference,
    VersionConflict,
    VersionNotFound,
)
from ctrain.registry.layout import (
    CHAMPION,
    CLAIM_FILE,
    LATEST,
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    Layout,
    check_version,
)
from ctrain.registry.objects import ConditionFailed, ObjectStore
from ctrain.registry.trust import loads_trusted
from ctrain.storage import S3Client

__all__ = ["ChampionChange", "LoadedModel", "Registry", "format_time", "sha256_hex"]

log = logging.getLogger(__name__)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, the format of every time the registry writes."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_hex(data: bytes) -> str:
    """The hex sha256 digest recorded as ``modelSha256``."""
    return hashlib.sha256(data).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ChampionChange:
    """One line of ``aliases/champion.log``: the alias moved ``from_version`` → ``to_version``."""

    time: str
    from_version: str | None
    to_version: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"time": self.time, "from": self.from_version, "to": self.to_version,
                "reason": self.reason}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChampionChange:
        previous = data.get("from")
        return cls(
            time=str(data["time"]),
            from_version=None if previous is None else str(previous),
            to_version=str(data["to"]),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class LoadedModel:
    """A verified, deserialized model with the metadata it was published with."""

    model: str
    version: str
    metadata: dict[str, Any]
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
    ) -> None:
        self._store = ObjectStore(s3_client, bucket)
        self.layout = Layout(bucket, prefix)
        self._clock = clock
        self._max_claim_attempts = max_claim_attempts

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
        """Visible versions (those with metadata.json), oldest first."""
        versions = set()
        for key in self._store.keys(self.layout.versions_root(model)):
            parsed = self.layout.version_of(model, key)
            if parsed is not None and parsed[1] == METADATA_FILE:
                versions.add(parsed[0])
        return sorted(versions, key=int)

    def metadata(self, model: str, version: str | int) -> dict[str, Any]:
        """The parsed metadata.json of a visible version; VersionNotFound otherwise."""
        version = check_version(version)
        data = self._store.get_bytes(self.layout.key(model, version, METADATA_FILE))
        if data is None:
            raise VersionNotFound(f"model {model!r} has no version {version}")
        return self._parse_object(data, f"metadata.json of {model} v{version}")

    def reference(self, model: str, version: str | int) -> dict[str, Any]:
        """The parsed reference.json (training-data statistics) of a visible version."""
        version = check_version(version)
        self._require_visible(model, version)
        data = self._store.get_bytes(self.layout.key(model, version, REFERENCE_FILE))
        if data is None:
            raise IntegrityError(f"{model} v{version} is published but has no reference.json")
        return self._parse_object(data, f"reference.json of {model} v{version}")

    def champion(self, model: str) -> str | None:
        """The version the champion alias points at, or None if there is none yet."""
        data = self._store.get_bytes(self.layout.champion_key(model))
        if data is None:
            return None
        text = data.decode("utf-8", errors="replace").strip()
        try:
            return check_version(text)
        except InvalidReference as exc:
            raise IntegrityError(f"aliases/champion of {model} holds {text!r}") from exc

    def resolve(self, model: str, ref: str | int) -> str:
        """Turn ``champion``, ``latest`` or ``<n>`` into a visible version number."""
        text = str(ref).strip()
        if text == CHAMPION:
            champion = self.champion(model)
            if champion is None:
                raise VersionNotFound(f"model {model!r} has no champion")
            self._require_visible(model, champion)
            return champion
        if text == LATEST:
            versions = self.list_versions(model)
            if not versions:
                raise VersionNotFound(f"model {model!r} has no versions")
            return versions[-1]
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

    def champion_history(self, model: str) -> list[ChampionChange]:
        """Every champion move, oldest first."""
        data = self._store.get_bytes(self.layout.champion_log_key(model))
        if data is None:
            return []
        changes = []
        for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                changes.append(ChampionChange.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise IntegrityError(f"champion.log of {model}, line {number}: {exc}") from exc
        return changes

    def previous_champion(self, model: str) -> str | None:
        """The version the current champion replaced (the target of a rollback)."""
        current = self.champion(model)
        for change in reversed(self.champion_history(model)):
            if change.to_version == current:
                return change.from_version
        return None

    def monitoring_history(
        self, model: str, namespace: str, deployment: str
    ) -> list[dict[str, Any]]:
        """What the operator observed on a deployment over time, oldest first."""
        key = monitoring.monitoring_key(self.layout, model, namespace, deployment)
        return monitoring.history(self._store, key)

    # Writing ---------------------------------------------------------------------------

    def reserve_version(self, model: str, *, owner: str = "") -> str:
        """Claim the next version number; unique even when trainers race for it."""
        candidate = self._highest_number(model) + 1
        token = uuid.uuid4().hex
        body = json.dumps(
            {"token": token, "owner": owner, "claimedAt": format_time(self._clock())}
        ).encode()
        for _ in range(self._max_claim_attempts):
            key = self.layout.key(model, candidate, CLAIM_FILE)
            if self._claim(key, body, token):
                log.info("reserved version model=%s version=%d", model, candidate)
                return str(candidate)
            candidate += 1
        raise VersionConflict(
            f"could not claim a version of {model!r} in {self._max_claim_attempts} attempts"
        )

    def publish(
        self,
        model: str,
        version: str | int,
        model_bytes: bytes,
        metadata: dict[str, Any],
        reference: dict[str, Any],
    ) -> dict[str, Any]:
        """Upload a complete version; metadata.json last, so it becomes visible atomically.

        ``model``, ``version``, ``modelFile``, ``modelSha256`` (and ``createdAt`` if
        absent) are set by the registry. Returns the metadata as written.
        """
        version = check_version(version)
        metadata_key = self.layout.key(model, version, METADATA_FILE)
        if self._store.get_bytes(metadata_key) is not None:
            raise VersionConflict(f"{model} v{version} is already published")
        final = {
            **metadata,
            "model": model,
            "version": version,
            "modelFile": MODEL_FILE,
            "modelSha256": sha256_hex(model_bytes),
        }
        final.setdefault("createdAt", format_time(self._clock()))
        # Serialize before the first upload: a bad document must not leave objects behind.
        metadata_body = json.dumps(final, indent=2, sort_keys=True).encode()
        reference_body = json.dumps(reference, indent=2, sort_keys=True).encode()

        written: list[str] = []
        try:
            for name, body in ((MODEL_FILE, model_bytes), (REFERENCE_FILE, reference_body)):
                key = self.layout.key(model, version, name)
                written.append(key)
                self._store.put(key, body)
            self._store.put(
                metadata_key,
                metadata_body,
                content_type="application/json",
                if_none_match=True,
            )
        except ConditionFailed as exc:
            if self._store.get_bytes(metadata_key) == metadata_body:
                return final  # our own PUT, retried by botocore after a lost response
            # metadata.json belongs to the writer that won; remove only what we wrote.
            self._store.delete_quietly(written)
            raise VersionConflict(f"{model} v{version} was published by another writer") from exc
        except BaseException:
            # Also deletes metadata.json in case it was written but its response was lost.
            self._store.delete_quietly([*written, metadata_key])
            raise
        log.info("published model=%s version=%s sha256=%s", model, version, final["modelSha256"])
        return final

    def set_champion(self, model: str, version: str | int, reason: str) -> ChampionChange | None:
        """Point the champion alias at a visible version and log the move.

        Returns None (and logs nothing) when ``version`` already is the champion.
        """
        version = check_version(version)
        self._require_visible(model, version)
        previous = self.champion(model)
        if previous == version:
            return None
        self._store.put(
            self.layout.champion_key(model), version.encode(), content_type="text/plain"
        )
        change = ChampionChange(format_time(self._clock()), previous, version, reason)
        self._append_log(model, change)
        log.info("champion model=%s from=%s to=%s", model, previous, version)
        return change

    def rollback(self, model: str, reason: str, *, to: str | int | None = None) -> ChampionChange:
        """Make ``to`` (default: the champion the current one replaced) the champion again."""
        target = self.previous_champion(model) if to is None else check_version(to)
        if target is None:
            raise VersionNotFound(f"model {model!r} has no previous champion to roll back to")
        change = self.set_champion(model, target, reason)
        if change is None:
            raise VersionConflict(f"v{target} of {model!r} already is the champion")
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

    def _load(self, model: str, version: str) -> LoadedModel:
        metadata = self.metadata(model, version)
        expected = metadata.get("modelSha256")
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

    def _highest_number(self, model: str) -> int:
        highest = 0
        for key in self._store.keys(self.layout.versions_root(model)):
            parsed = self.layout.version_of(model, key)
            if parsed is not None:
                highest = max(highest, int(parsed[0]))
        return highest

    def _claim(self, key: str, body: bytes, token: str) -> bool:
        # On ConditionFailed someone holds it, unless it was our own PUT that botocore
        # retried after a lost response: the token read back below decides either way.
        with contextlib.suppress(ConditionFailed):
            self._store.put(key, body, content_type="application/json", if_none_match=True)
        current = self._store.get_bytes(key)
        if current is None:
            return False
        try:
            return bool(json.loads(current).get("token") == token)
        except (ValueError, AttributeError):
            return False

    def _append_log(self, model: str, change: ChampionChange) -> None:
        # S3 has no append: read-modify-write guarded by the ETag, retried on a lost race.
        key = self.layout.champion_log_key(model)
        line = (json.dumps(change.to_json(), sort_keys=True) + "\n").encode()
        for attempt in range(10):
            current = self._store.get(key)
            try:
                if current is None:
                    self._store.put(key, line, content_type="text/plain", if_none_match=True)
                else:
                    body, etag = current
                    self._store.put(key, body + line, content_type="text/plain", if_match=etag)
                return
            except ConditionFailed:
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise VersionConflict(f"could not append to {key}: too many concurrent writers")

    @staticmethod
    def _parse_object(data: bytes, what: str) -> dict[str, Any]:
        try:
            parsed = json.loads(data)
        except ValueError as exc:
            raise IntegrityError(f"{what} is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise IntegrityError(f"{what} is not a JSON object")
        return parsed
