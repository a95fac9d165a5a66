"""What the operator knows of the cluster between passes: the latest body of every watched
object (an informer's cache, filled by kopf's watch events) and who follows whom.

Reconcilers read their object and its children from here instead of asking the apiserver
on every pass; what they write comes back through `put` (the apiserver's answer) so the
next pass sees it even before the watch event. A decision that would be wrong on a stale
or cold cache (a child seems gone) is confirmed with a live read by the reconciler.
Memory is bounded by the objects that exist: deleted objects leave the store.
"""

import threading
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, NamedTuple, TypeVar

__all__ = ["Followers", "ObjectRef", "Store", "newer"]

Body = dict[str, Any]
S = TypeVar("S", bound=Hashable)


class ObjectRef(NamedTuple):
    """One object of one kind: the key of work queues, stores and per-object memory."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


def newer(incoming: Body, known: Body | None) -> bool:
    """Whether `incoming` is at least as recent as `known`.

    resourceVersions are opaque to clients in general; with etcd behind the apiserver they
    are increasing integers, and comparing them keeps an old watch event that arrives
    after the answer to our own write from replacing that answer. Anything else counts
    as newer (the watch is the authority).
    """
    if known is None:
        return True
    new, old = incoming["metadata"].get("resourceVersion"), known["metadata"].get("resourceVersion")
    if isinstance(new, str) and isinstance(old, str) and new.isdigit() and old.isdigit():
        return int(new) >= int(old)
    return True


def _slim(body: Body) -> Body:
    """The body without managedFields, the bulk of an object no reconciler reads."""
    metadata = body.get("metadata") or {}
    if "managedFields" not in metadata:
        return body
    return {**body, "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}


class Store:
    """The latest body of each object of one resource, indexed by the object that owns it.

    `owner` maps a body to the ObjectRef of its owner (from a label or an ownerReference),
    or None; `owned_by` answers "which pods/Jobs/runs belong to this object" without a
    list call.
    """

    def __init__(self, kind: str, owner: Callable[[Body], ObjectRef | None] | None = None):
        self.kind = kind
        self._owner = owner
        self._lock = threading.Lock()
        self._bodies: dict[tuple[str, str], Body] = {}
        self._owned: dict[ObjectRef, set[tuple[str, str]]] = {}

    def put(self, body: Body) -> bool:
        """Remember `body` unless an answer we already hold is newer; True if remembered."""
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        with self._lock:
            known = self._bodies.get(key)
            if not newer(body, known):
                return False
            self._unindex(key, known)
            slim = _slim(body)
            self._bodies[key] = slim
            owner = self._owner(slim) if self._owner else None
            if owner is not None:
                self._owned.setdefault(owner, set()).add(key)
            return True

    def remove(self, namespace: str, name: str) -> None:
        with self._lock:
            key = (namespace, name)
            self._unindex(key, self._bodies.pop(key, None))

    def _unindex(self, key: tuple[str, str], body: Body | None) -> None:
        owner = self._owner(body) if body is not None and self._owner else None
        if owner is not None and owner in self._owned:
            self._owned[owner].discard(key)
            if not self._owned[owner]:
                del self._owned[owner]

    def get(self, namespace: str, name: str) -> Body | None:
        with self._lock:
            return self._bodies.get((namespace, name))

    def owned_by(self, owner: ObjectRef) -> list[Body]:
        with self._lock:
            return [self._bodies[key] for key in sorted(self._owned.get(owner, ()))]

    def owner_of(self, body: Body) -> ObjectRef | None:
        return self._owner(body) if self._owner else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._bodies)


class Followers(Generic[S]):
    """Which objects follow which subjects (a model's champion, a dataset, another object),
    so that a change of a subject enqueues exactly its followers. A follower names all its
    subjects at once on every pass; `drop` forgets a deleted follower."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._of: dict[S, set[ObjectRef]] = {}
        self._subjects: dict[ObjectRef, set[S]] = {}

    def follow(self, follower: ObjectRef, subjects: Iterable[S]) -> None:
        """`follower` now follows exactly `subjects` (and nothing it followed before)."""
        wanted = set(subjects)
        with self._lock:
            before = self._subjects.get(follower, set())
            for subject in before - wanted:
                self._release(subject, follower)
            for subject in wanted - before:
                self._of.setdefault(subject, set()).add(follower)
            if wanted:
                self._subjects[follower] = wanted
            else:
                self._subjects.pop(follower, None)

    def _release(self, subject: S, follower: ObjectRef) -> None:
        followers = self._of.get(subject)
        if followers is not None:
            followers.discard(follower)
            if not followers:
                del self._of[subject]

    def drop(self, follower: ObjectRef) -> None:
        self.follow(follower, ())

    def of(self, subject: S) -> set[ObjectRef]:
        with self._lock:
            return set(self._of.get(subject, ()))

    def subjects(self) -> set[S]:
        """Every subject somebody follows."""
        with self._lock:
            return set(self._of)
