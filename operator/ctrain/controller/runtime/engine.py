"""The controller runtime: per-kind work queues and workers, and the routing of watch events.

kopf watches the cluster and hands every event to `Runtime.observe`, which only records
the body and enqueues keys: the object itself, its owner (a Job's TrainingJob, a run's
ContinuousTraining) and the objects that follow it. Each kind has its own queue and
worker threads, so a slow kind never delays another, and the storage watch has one more
loop keyed by S3 endpoint. A pass:

- runs with a deadline (`PASS_SECONDS`), which every API and S3 call respects;
- returns when the object wants to be looked at again (a canary ageing, the next cron
  slot), or None: nothing is relisted on a timer, and a finished object is not requeued;
- on `Rejected` (an invalid spec, a child the apiserver refuses) reports the reason in
  the object's status through its kind and waits for the object to change;
- on any other error is retried after the key's own backoff (1 s, 2 s, 4 s ... 5 min,
  jittered); the traceback is logged once, later failures in one line with the delay.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, Generic, TypeVar

from ctrain.api import Reason
from ctrain.controller import metrics
from ctrain.controller.deadline import running_until
from ctrain.controller.kube import Invalid, Resource
from ctrain.controller.runtime.context import Context, Rejected
from ctrain.controller.runtime.events import EventPoster
from ctrain.controller.runtime.owners import OwnerRule
from ctrain.controller.runtime.queue import Backoff, WorkQueue
from ctrain.controller.runtime.store import ObjectRef
from ctrain.controller.storage.clients import Endpoint

__all__ = ["PASS_SECONDS", "Kind", "Loop", "Runtime"]

log = logging.getLogger("ctrain.operator")
K = TypeVar("K", bound=Hashable)
Body = dict[str, Any]
PASS_SECONDS = 30.0
STORAGE_WORKERS = 2


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind the operator reconciles, and how."""

    resource: Resource
    reconcile: Callable[[Context, Body], float | None]  # seconds until the next look, or None
    reject: Callable[[Context, Body, Rejected], None]  # write the reason into status
    workers: int
    # The children it watches, and how each names it (their events enqueue it).
    children: Mapping[Resource, OwnerRule] = dataclasses.field(default_factory=dict)
    # What else a deleted object leaves behind in this process (its metric series).
    forget: Callable[[ObjectRef], None] = lambda _ref: None

    @property
    def label(self) -> str:
        """The `kind` label of the operator's metrics."""
        return self.resource.kind.lower()


class Loop(Generic[K]):
    """A work queue with its own worker threads and per-key backoff."""

    def __init__(
        self,
        name: str,
        handle: Callable[[K], float | None],
        *,
        workers: int,
        deadline: float = PASS_SECONDS,
        backoff: Backoff[K] | None = None,
    ) -> None:
        self.name, self._handle, self._workers, self._deadline = name, handle, workers, deadline
        self.queue: WorkQueue[K] = WorkQueue()
        self.backoff: Backoff[K] = backoff or Backoff()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for index in range(self._workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self.queue.shutdown()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))

    def add(self, key: K) -> None:
        self.queue.add(key)

    def forget(self, key: K) -> None:
        self.queue.forget(key)
        self.backoff.forget(key)

    def _work(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                self.run(key)
            finally:
                self.queue.done(key)

    def run(self, key: K) -> None:
        """One pass of `key`, then its next look: as it asked, or after its backoff."""
        metrics.RECONCILIATIONS.labels(self.name).inc()
        started = time.monotonic()
        try:
            with running_until(self._deadline):
                again = self._handle(key)
        except Exception as error:  # every failure is retried; none stops the worker
            metrics.RECONCILE_ERRORS.labels(self.name).inc()
            delay = self.backoff.failed(key)
            failures = self.backoff.failures(key)
            if failures == 1:
                log.exception("%s failed; retrying in %.1fs", key, delay)
            else:
                log.warning(
                    "%s failed again (%d in a row; retrying in %.1fs): %s",
                    key,
                    failures,
                    delay,
                    error,
                )
            self.queue.schedule(key, delay)
            return
        finally:
            metrics.RECONCILE_SECONDS.labels(self.name).observe(time.monotonic() - started)
        self.backoff.forget(key)
        self.queue.schedule(key, again)


class Runtime:
    """Every kind's loop and the storage loop, fed by watch events."""

    def __init__(
        self, context: Context, kinds: Iterable[Kind], events: EventPoster | None = None
    ) -> None:
        self.context = context
        self.events = events
        if events is not None:
            context.post_event = events.post
        self.kinds = {kind.resource.kind: kind for kind in kinds}
        self.loops: dict[str, Loop[ObjectRef]] = {
            name: Loop(kind.label, self._pass_of(kind), workers=kind.workers)
            for name, kind in self.kinds.items()
        }
        self.storage_loop: Loop[Endpoint] = Loop(
            "storage", context.storage.poll, workers=STORAGE_WORKERS
        )

    def _all(self) -> list[Loop[Any]]:
        return [*self.loops.values(), self.storage_loop]

    def start(self) -> None:
        if self.events is not None:
            self.events.start()
        for loop in self._all():
            loop.start()

    def stop(self) -> None:
        for loop in self._all():
            loop.stop()
        if self.events is not None:
            self.events.stop()

    def enqueue(self, ref: ObjectRef) -> None:
        loop = self.loops.get(ref.kind)
        if loop is not None:
            loop.add(ref)

    def wake(self, endpoint: Endpoint) -> None:
        self.storage_loop.add(endpoint)

    def observe(self, resource: Resource, kind_of_event: str | None, body: Body) -> None:
        """Record a watch event and enqueue whoever it concerns (never blocks on I/O)."""
        store = self.context.stores[resource]
        metadata = body["metadata"]
        namespace, name = metadata.get("namespace") or "", metadata["name"]
        ref = ObjectRef(resource.kind, namespace, name)
        if kind_of_event == "DELETED":
            owner = store.owner_of(store.get(namespace, name) or body)
            store.remove(namespace, name)
            self._forget(ref, metadata.get("uid") or "")
        else:
            store.put(body)
            owner = store.owner_of(body)
        if ref.kind in self.kinds and kind_of_event != "DELETED":
            self.enqueue(ref)
        if owner is not None:
            self.enqueue(owner)
        for follower in self.context.relations.of(ref):
            self.enqueue(follower)

    def _forget(self, ref: ObjectRef, uid: str) -> None:
        """A deleted object leaves no trace: memory, followed facts, queue, backoff, metrics."""
        kind = self.kinds.get(ref.kind)
        if kind is None:
            return
        self.context.memory.forget(ref)
        self.context.storage.drop(ref)
        self.context.relations.drop(ref)
        self.loops[ref.kind].forget(ref)
        metrics.PHASES.record(ref.kind, uid, None)
        kind.forget(ref)

    def _pass_of(self, kind: Kind) -> Callable[[ObjectRef], float | None]:
        store = self.context.stores[kind.resource]

        def one_pass(ref: ObjectRef) -> float | None:
            body = store.get(ref.namespace, ref.name)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return None  # gone or going: garbage collection removes its children
            try:
                return kind.reconcile(self.context, body)
            except Invalid as error:
                rejected = Rejected(Reason.INVALID_SPEC, f"the apiserver refused {error}")
            except Rejected as error:
                rejected = error
            log.info("%s: %s", ref, rejected)
            kind.reject(self.context, body, rejected)
            return None

        return one_pass
