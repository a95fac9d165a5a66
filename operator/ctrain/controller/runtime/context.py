"""What every reconcile pass is given: one `Context`, built once at startup.

Reconcilers take everything they touch from it (the API wrapper, the caches of watched
objects, the storage watch, the clock, per-object memory) and nothing from module state,
so a test builds a Context around a recording fake and runs a pass with no cluster.
"""

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ctrain.controller.config import OperatorConfig
from ctrain.controller.kube import Kube, Resource
from ctrain.controller.runtime.store import Followers, ObjectRef, Store
from ctrain.controller.storage.watch import StorageWatch

__all__ = ["Context", "Memory", "Rejected", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Rejected(Exception):
    """The object cannot be acted on as it is (an invalid spec, a child the apiserver
    refuses): reported in its status with `reason`, not retried until it changes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class Memory:
    """Small per-object notes that are not worth a status field (when drift was last
    checked), kept while the object exists and forgotten when it is deleted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: dict[ObjectRef, dict[str, Any]] = {}

    def get(self, ref: ObjectRef, key: str, default: Any = None) -> Any:
        with self._lock:
            return self._notes.get(ref, {}).get(key, default)

    def put(self, ref: ObjectRef, key: str, value: Any) -> None:
        with self._lock:
            self._notes.setdefault(ref, {})[key] = value

    def forget(self, ref: ObjectRef) -> None:
        with self._lock:
            self._notes.pop(ref, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._notes)


@dataclasses.dataclass
class Context:
    """The operator's dependencies, injected into every pass."""

    kube: Kube
    config: OperatorConfig
    stores: dict[Resource, Store]  # the watched resources' latest bodies
    storage: StorageWatch
    relations: Followers[ObjectRef]  # e.g. a ContinuousTraining follows a ModelDeployment
    memory: Memory
    clock: Callable[[], datetime] = utcnow
    # How Events leave: in the background when running, at once in tests (`kube.event`).
    post_event: Callable[[dict[str, Any], str, str, bool], None] | None = None

    def store(self, resource: Resource) -> Store:
        return self.stores[resource]

    def remember(self, resource: Resource, body: dict[str, Any] | None) -> dict[str, Any] | None:
        """Keep what the apiserver answered to a write, so the next pass sees it at once."""
        if body is not None and resource in self.stores:
            self.stores[resource].put(body)
        return body
