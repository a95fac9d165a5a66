"""The champion log: the source of truth of which version is champion, and how it got there.

``aliases/champion.log`` holds one JSON line per move of the champion, each naming the
version it replaced (``from``) and the new one (``to``). The champion *is* the last
line's ``to``; ``aliases/champion`` (the plain-text alias of DESIGN.md) is a copy derived
from the log after each move, kept for readers of the bucket, never trusted by ctrain.

A move is a compare-and-set on the log object: read it with its ETag, check that its
last ``to`` is the version the mover expects, and write the whole log back with one line
added under ``If-Match`` (``If-None-Match: *`` for the first line). Because every write
replaces the whole log with (a complete log read earlier) + (one line chained to its
last line), the stored log never has a gap, line i's ``from`` is always line i-1's
``to``, whatever the interleaving of writers, even on stores whose conditional writes
are check-then-act (moto's server): there a racing writer may overwrite a line, never
break the chain. To learn whether its own line survived, the mover reads the log back
after a settling pause (`Registry(settle_seconds=...)`) and looks for its line's ``id``;
if it is gone, the move lost (`ChampionMoved`). On stores with atomic conditional writes
(AWS S3, MinIO, Ceph) the loser already gets 412 and the read-back only confirms.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ctrain.registry.errors import ChampionMoved, IntegrityError, InvalidReference, VersionConflict
from ctrain.registry.layout import Layout, check_version
from ctrain.registry.objects import ConditionFailed, ObjectStore

__all__ = ["ChampionChange", "ChampionLog", "Champions", "append", "read"]

log = logging.getLogger(__name__)

_MOVE_ATTEMPTS = 10


@dataclass(frozen=True)
class ChampionChange:
    """One line of ``aliases/champion.log``: the alias moved ``from_version`` → ``to_version``.

    ``action`` is promote, demote, rollback or unreject; ``by`` names who moved it (a
    TrainingJob, a ModelDeployment, ``ctrain models``); ``id`` identifies the line, so its
    writer can tell that it survived; ``unrejected`` marks a hand promotion of a rejected
    version.
    """

    time: str
    from_version: str | None
    to_version: str
    reason: str
    by: str = ""
    action: str = ""
    id: str = ""
    unrejected: bool = False

    def to_json(self) -> dict[str, Any]:
        line: dict[str, Any] = {"time": self.time, "from": self.from_version,
                                "to": self.to_version, "reason": self.reason}  # fmt: skip
        for name in ("by", "action", "id"):
            if getattr(self, name):
                line[name] = getattr(self, name)
        if self.unrejected:
            line["unrejected"] = True
        return line

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChampionChange:
        previous = data.get("from")
        return cls(
            time=str(data["time"]),
            from_version=None if previous is None else str(previous),
            to_version=str(data["to"]),
            reason=str(data.get("reason", "")),
            by=str(data.get("by", "")),
            action=str(data.get("action", "")),
            id=str(data.get("id", "")),
            unrejected=bool(data.get("unrejected", False)),
        )


@dataclass(frozen=True)
class ChampionLog:
    """The log as read: its lines, its bytes and the ETag to write it back against."""

    changes: list[ChampionChange] = field(default_factory=list)
    body: bytes = b""
    etag: str | None = None

    @property
    def exists(self) -> bool:
        return self.etag is not None

    @property
    def tail(self) -> str | None:
        """The champion according to the log; None when it has no line."""
        return self.changes[-1].to_version if self.changes else None

    def champions(self) -> list[str]:
        """Every version that was champion, in order (the first line's ``from`` first)."""
        if not self.changes:
            return []
        first = self.changes[0].from_version
        return ([first] if first is not None else []) + [c.to_version for c in self.changes]

    def has(self, change_id: str) -> bool:
        return any(change.id == change_id for change in self.changes)


def read(store: ObjectStore, key: str, model: str) -> ChampionLog:
    """The log at ``key``; an empty log (no ETag) when there is none yet."""
    found = store.get(key)
    if found is None:
        return ChampionLog()
    body, etag = found
    changes = []
    for number, line in enumerate(body.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            changes.append(ChampionChange.from_json(json.loads(line)))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"champion.log of {model}, line {number}: {exc}") from exc
    return ChampionLog(changes, body, etag)


def append(store: ObjectStore, key: str, log: ChampionLog, change: ChampionChange) -> None:
    """Write ``log`` + ``change`` back, conditional on the log being unchanged.

    Raises `ConditionFailed` when another writer changed the log since it was read.
    """
    line = (json.dumps(change.to_json(), sort_keys=True) + "\n").encode()
    body = log.body if not log.body or log.body.endswith(b"\n") else log.body + b"\n"
    if log.etag is None:
        store.put(key, line, content_type="text/plain", if_none_match=True)
    else:
        store.put(key, body + line, content_type="text/plain", if_match=log.etag)


@dataclass(frozen=True)
class Champions:
    """The champion of each model in one registry: reading it and moving it."""

    store: ObjectStore
    layout: Layout
    now: Callable[[], str]
    settle: Callable[[], None]
    rejected_versions: Callable[[str], set[str]]

    def read_log(self, model: str) -> ChampionLog:
        return read(self.store, self.layout.champion_log_key(model), model)

    def current(self, history: ChampionLog, model: str) -> str | None:
        if history.changes:
            return history.tail
        # A registry written before the log was the source of truth: the alias alone.
        data = self.store.get_bytes(self.layout.champion_key(model))
        if data is None:
            return None
        text = data.decode("utf-8", errors="replace").strip()
        try:
            return check_version(text)
        except InvalidReference as exc:
            raise IntegrityError(f"aliases/champion of {model} holds {text!r}") from exc

    def last_good(self, history: ChampionLog, model: str, *, exclude: str | None) -> str | None:
        champions = history.champions() or [v for v in [self.current(history, model)] if v]
        if exclude is not None and champions and champions[-1] == exclude:
            champions = champions[:-1]
        rejected = self.rejected_versions(model) if champions else set()
        for version in reversed(champions):
            if version not in rejected and version != exclude:
                return version
        return None

    def move(
        self,
        model: str,
        expected: str | None,
        to: str,
        *,
        reason: str,
        by: str,
        action: str,
        unrejected: bool = False,
        allow_same: bool = False,
    ) -> ChampionChange | None:
        """The compare-and-set behind every move (see `ctrain.registry.champion`)."""
        key = self.layout.champion_log_key(model)
        for _ in range(_MOVE_ATTEMPTS):
            history = self.read_log(model)
            current = self.current(history, model)
            if current != expected:
                raise ChampionMoved(expected, current)
            if current == to and not allow_same:
                return None
            change = ChampionChange(self.now(), current, to, reason, by, action,
                                    uuid.uuid4().hex, unrejected)  # fmt: skip
            try:
                append(self.store, key, history, change)
            except ConditionFailed:
                if self.read_log(model).has(change.id):  # our own PUT, retried after a lost reply
                    break
                continue  # the log changed: read it again (and find whether we still may)
            break
        else:
            raise VersionConflict(f"could not append to {key}: too many concurrent writers")
        self.settle()
        settled = self.read_log(model)
        if not settled.has(change.id):
            raise ChampionMoved(expected, settled.tail)  # overwritten by a racing writer
        self._sync_alias(model, settled)
        log.info("champion model=%s from=%s to=%s by=%s", model, current, to, by)
        return change

    def _sync_alias(self, model: str, history: ChampionLog) -> None:
        # The alias is a copy for readers of the bucket; whoever writes last copies the tail.
        key = self.layout.champion_key(model)
        for _ in range(3):
            found = self.store.get(key)
            tail = history.tail
            if tail is None or (found is not None and found[0].decode().strip() == tail):
                return
            try:
                self.store.put(key, tail.encode(), content_type="text/plain",
                                if_match=None if found is None else found[1],
                                if_none_match=found is None)  # fmt: skip
                return
            except ConditionFailed:
                history = self.read_log(model)
        log.warning("aliases/champion of %s may be stale; the log is authoritative", model)
