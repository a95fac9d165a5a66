"""The storage watch: facts in S3 read once for all their followers, per endpoint.

Objects do not read S3 in their own passes. A ModelDeployment says which fact it follows
(`champion` of its model in its registry) and reads the latest reading from here; the
watch reads each fact again when it is due (the shortest interval any follower asked
for) and enqueues the followers of a fact whose reading changed. So 100
ModelDeployments of one model cost one conditional request per interval, and a champion
that moves reaches all of them at once.

Reads are grouped by endpoint: one pass per endpoint reads its due facts in turn, and
the runtime never runs two passes of one endpoint at once. An endpoint is read at most
`READS_PER_SECOND` times a second at rest: with more facts than that many per interval,
each is read a little less often, so the cost of watching stays bounded however many
models are followed (and an in-cluster promotion is read at once anyway, `refresh`).

An endpoint that does not answer fails its pass at the first timeout: every fact of that
endpoint due then gets the failure as its reading (its followers report it) and the pass
raises, so the runtime backs that endpoint off while other endpoints are read as usual.
"""

import dataclasses
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping

from ctrain.api import Reason
from ctrain.controller.runtime.store import ObjectRef
from ctrain.controller.storage.clients import Endpoint, Forbidden, Location, S3Clients
from ctrain.controller.storage.facts import (
    DatasetFact,
    Fact,
    Failure,
    ModelFact,
    Reading,
    Resolved,
    Unreachable,
    read,
)
from ctrain.registry import Registry

__all__ = ["StorageWatch"]

log = logging.getLogger("ctrain.operator")
READS_PER_SECOND = 10.0  # per endpoint, at rest


@dataclasses.dataclass
class _Entry:
    reading: Reading | None = None
    due: float = 0.0  # monotonic time of the next read
    intervals: dict[ObjectRef, float] = dataclasses.field(default_factory=dict)  # per follower


def _bucket(fact: Fact) -> str:
    if isinstance(fact, DatasetFact):
        return fact.uri.removeprefix("s3://").partition("/")[0]
    return fact.location.bucket


class StorageWatch:
    """Readings of the facts objects follow; `poll(endpoint)` is one endpoint's pass."""

    def __init__(
        self,
        clients: S3Clients,
        *,
        wake: Callable[[Endpoint], None],
        notify: Callable[[ObjectRef], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = clients
        self._wake, self._notify, self._clock = wake, notify, clock
        self._lock = threading.Lock()
        self._entries: dict[Fact, _Entry] = {}
        self._followed: dict[ObjectRef, set[Fact]] = {}

    def follow(
        self, follower: ObjectRef, wanted: Mapping[Fact, float]
    ) -> dict[Fact, Reading | None]:
        """`follower` follows exactly the facts in `wanted` (fact: seconds between reads);
        the latest reading of each, None for a fact never read yet (the follower is
        enqueued once it is)."""
        now = self._clock()
        first_reads: set[Endpoint] = set()
        with self._lock:
            for fact in self._followed.get(follower, set()) - set(wanted):
                self._unfollow(fact, follower)
            for fact, interval in wanted.items():
                entry = self._entries.get(fact)
                if entry is None:
                    entry = self._entries[fact] = _Entry(due=now)
                    first_reads.add(fact.endpoint)
                elif interval < min(entry.intervals.values(), default=interval + 1):
                    entry.due = min(entry.due, now + interval)
                entry.intervals[follower] = interval
            if wanted:
                self._followed[follower] = set(wanted)
            else:
                self._followed.pop(follower, None)
            readings = {fact: self._entries[fact].reading for fact in wanted}
        for endpoint in first_reads:
            self._wake(endpoint)
        return readings

    def drop(self, follower: ObjectRef) -> None:
        """The follower is gone: facts nobody follows any more are forgotten."""
        self.follow(follower, {})

    def _unfollow(self, fact: Fact, follower: ObjectRef) -> None:
        entry = self._entries.get(fact)
        if entry is None:
            return
        entry.intervals.pop(follower, None)
        if not entry.intervals:
            del self._entries[fact]

    def refresh(self, fact: Fact) -> None:
        """Read `fact` again soon, whatever its interval: something in the cluster moved it
        (a TrainingJob promoted its model). Nothing happens if nobody follows it."""
        with self._lock:
            entry = self._entries.get(fact)
            if entry is None:
                return
            entry.due = self._clock()
        self._wake(fact.endpoint)

    def read_now(self, fact: Fact) -> Reading | None:
        """Read a followed fact in the caller's pass (when it must not wait for the watch);
        its other followers are told as usual if it changed."""
        with self._lock:
            entry = self._entries.get(fact)
            if entry is None:
                return None
            previous = entry.reading
        try:
            reading = read(self._clients.access(fact.endpoint, _bucket(fact)), fact, previous)
        except Forbidden as error:
            reading = Reading(failure=Failure(Reason.STORAGE_FORBIDDEN, str(error)))
        except Unreachable as error:
            reading = Reading(failure=Failure(Reason.STORAGE_ERROR, str(error)))
        for follower in self._record(fact, reading):
            self._notify(follower)
        return reading

    def registry(self, where: Location) -> Registry:
        """The registry at `where`, through this watch's clients: for the rare writes the
        operator itself makes (a ModelDeployment rejecting a version that failed)."""
        client = self._clients.access(where.endpoint, where.bucket)
        return Registry(client, where.bucket, where.prefix)

    def reading(self, fact: Fact) -> Reading | None:
        with self._lock:
            entry = self._entries.get(fact)
            return entry.reading if entry else None

    def poll(self, endpoint: Endpoint) -> float | None:
        """Read the due facts of `endpoint`; seconds until the next one is due (None: the
        endpoint has no followed facts left). Raises when the endpoint does not answer."""
        now = self._clock()
        with self._lock:
            due = [
                (fact, entry.reading)
                for fact, entry in self._entries.items()
                if fact.endpoint == endpoint and entry.due <= now
            ]
        changed: set[ObjectRef] = set()
        try:
            for index, (fact, previous) in enumerate(due):
                try:
                    s3 = self._clients.access(endpoint, _bucket(fact))
                except Forbidden as error:
                    forbidden = Failure(Reason.STORAGE_FORBIDDEN, str(error))
                    changed |= self._record(fact, Reading(failure=forbidden))
                    continue
                try:
                    reading = read(s3, fact, previous)
                except Unreachable as error:
                    failure = Failure(Reason.STORAGE_ERROR, str(error))
                    for missed, _ in due[index:]:
                        changed |= self._record(missed, Reading(failure=failure), retry=True)
                    raise
                changed |= self._record(fact, reading)
        finally:
            for follower in changed:
                self._notify(follower)
        return self._next_due(endpoint)

    def _record(self, fact: Fact, reading: Reading, retry: bool = False) -> set[ObjectRef]:
        """Keep `reading`; the followers to tell when it differs from the last one."""
        with self._lock:
            entry = self._entries.get(fact)
            if entry is None:
                return set()  # nobody follows it any more
            before, entry.reading = entry.reading, reading
            # A failed endpoint is read again when its backoff ends, whatever the interval.
            entry.due = self._clock() if retry else self._clock() + self._interval(fact, entry)
            if before == reading:
                return set()
            log.info("%s: %s", fact, _describe(reading))
            return set(entry.intervals)

    def _interval(self, fact: Fact, entry: _Entry) -> float:
        """Seconds until `fact` is read again: what its most demanding follower asked for,
        stretched when the endpoint has more facts than it should be asked about per
        second; spread over the last fifth so followers never wait longer than asked."""
        facts = sum(1 for known in self._entries if known.endpoint == fact.endpoint)
        asked = min(entry.intervals.values()) * random.uniform(0.8, 1.0)
        return max(asked, facts / READS_PER_SECOND)

    def _next_due(self, endpoint: Endpoint) -> float | None:
        with self._lock:
            dues = [e.due for f, e in self._entries.items() if f.endpoint == endpoint]
        if not dues:
            return None
        return max(min(dues) - self._clock(), 0.0)

    def model_metrics(self) -> list[tuple[str, str, Mapping[str, float]]]:
        """(model, version, metrics) of every version a followed fact resolves to now."""
        with self._lock:
            return [
                (fact.model, entry.reading.value.version, dict(entry.reading.value.metrics))
                for fact, entry in self._entries.items()
                if isinstance(fact, ModelFact)
                and entry.reading is not None
                and isinstance(entry.reading.value, Resolved)
            ]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _describe(reading: Reading) -> str:
    if reading.failure is not None:
        return f"{reading.failure.reason}: {reading.failure.message}"
    if isinstance(reading.value, Resolved):
        return f"version {reading.value.version}"
    return str(reading.value)
