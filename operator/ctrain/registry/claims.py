"""Claims: which writer owns a version number, and which version a TrainingJob owns.

A version number is claimed by creating ``versions/<n>/.claim`` with ``If-None-Match: *``;
the claim holds a random token and its owner (the TrainingJob's uid). S3, MinIO and Ceph
apply the condition atomically. On stores that check, then act (moto's server), two
writers can both pass the check; the later PUT then replaces the earlier one, so each
writer reads the claim back after a settling pause, and only the one whose token is
there owns the number. The same read-back settles a PUT that botocore retried after a
lost response (its own token is there).

One TrainingJob registers at most one version: ``trainingjobs/<uid>.json`` maps the
TrainingJob's uid to the version it claimed, written once (``If-None-Match``) and read
back the same way. A retried trainer pod (or one started again after the operator
restarted) looks its uid up first and reuses that version, so it never claims another.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ctrain.registry.errors import IntegrityError, InvalidReference, VersionConflict
from ctrain.registry.layout import CLAIM_FILE, Layout, check_version
from ctrain.registry.objects import ConditionFailed, ObjectStore

__all__ = ["Claimer", "JobClaim"]

log = logging.getLogger(__name__)

_UID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,127}$")


@dataclass(frozen=True)
class JobClaim:
    """The version a TrainingJob owns; ``reused`` when an earlier attempt claimed it."""

    version: str
    reused: bool


@dataclass(frozen=True)
class Claimer:
    """Claims in one registry (a bucket, a prefix)."""

    store: ObjectStore
    layout: Layout
    now: Callable[[], str]
    settle: Callable[[], None]
    max_attempts: int = 1000

    def claim_version(self, model: str, *, owner: str) -> str:
        """The next free version number, owned by ``owner`` from now on."""
        candidate = self._highest_number(model) + 1
        for _ in range(self.max_attempts):
            if self._create(self.layout.key(model, candidate, CLAIM_FILE), owner=owner):
                log.info("reserved version model=%s version=%d", model, candidate)
                return str(candidate)
            candidate += 1
        raise VersionConflict(
            f"could not claim a version of {model!r} in {self.max_attempts} attempts"
        )

    def owner(self, model: str, version: str) -> str | None:
        """Who claimed ``version`` (None when nobody did or the claim is unreadable)."""
        data = self.store.get_bytes(self.layout.key(model, check_version(version), CLAIM_FILE))
        return None if data is None else _field(data, "owner")

    def claim_for_job(self, model: str, uid: str) -> JobClaim:
        """The version TrainingJob ``uid`` owns: the one it claimed before, or a new one."""
        key = self.job_key(model, uid)
        earlier = self._job_version(key)
        if earlier is not None:
            log.info("reusing version model=%s version=%s uid=%s", model, earlier, uid)
            return JobClaim(earlier, reused=True)
        version = self.claim_version(model, owner=uid)
        body = json.dumps({"version": version, "claimedAt": self.now()}).encode()
        with contextlib.suppress(ConditionFailed):
            self.store.put(key, body, content_type="application/json", if_none_match=True)
        self.settle()
        winner = self._job_version(key)
        if winner is None:
            raise VersionConflict(f"the claim of TrainingJob {uid} on {model!r} vanished")
        if winner != version:
            # Another attempt of the same TrainingJob won; our number stays unpublished.
            log.warning("version %s of %s abandoned: TrainingJob %s owns %s", version, model,
                        uid, winner)  # fmt: skip
            return JobClaim(winner, reused=True)
        return JobClaim(version, reused=False)

    def job_version(self, model: str, uid: str) -> str | None:
        """The version TrainingJob ``uid`` claimed, or None; a read, never a claim."""
        return self._job_version(self.job_key(model, uid))

    def job_key(self, model: str, uid: str) -> str:
        if not _UID.match(uid):
            raise InvalidReference(f"invalid TrainingJob uid {uid!r}")
        return f"{self.layout.model_root(model)}trainingjobs/{uid}.json"

    def _job_version(self, key: str) -> str | None:
        data = self.store.get_bytes(key)
        if data is None:
            return None
        version = _field(data, "version")
        if version is None:
            raise IntegrityError(f"{key} names no version")
        return check_version(version)

    def _create(self, key: str, *, owner: str) -> bool:
        token = uuid.uuid4().hex
        body = json.dumps({"token": token, "owner": owner, "claimedAt": self.now()}).encode()
        try:
            self.store.put(key, body, content_type="application/json", if_none_match=True)
        except ConditionFailed:
            # Someone holds it, unless it was our own PUT retried after a lost response.
            pass
        else:
            self.settle()  # let a racing check-then-act writer's PUT land before reading
        current = self.store.get_bytes(key)
        return current is not None and _field(current, "token") == token

    def _highest_number(self, model: str) -> int:
        highest = 0
        for key in self.store.keys(self.layout.versions_root(model)):
            parsed = self.layout.version_of(model, key)
            if parsed is not None:
                highest = max(highest, int(parsed[0]))
        return highest


def _field(data: bytes, name: str) -> str | None:
    try:
        value = json.loads(data).get(name)
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)
