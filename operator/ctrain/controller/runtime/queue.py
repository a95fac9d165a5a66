"""A work queue per kind, with client-go's workqueue guarantees, and per-key backoff.

- A key waits at most once: adding a key that is already waiting does nothing.
- A key is never handed to two workers at once; a key added while a worker holds it is
  handed out again after `done`, so the change that arrived meanwhile is not lost.
- `schedule(key, delay)` sets the one time a key is looked at again (replacing an earlier
  schedule), `schedule(key, None)` cancels it: an object asks to be requeued after its own
  delay, and a finished one is not requeued at all.

`Backoff` is client-go's per-item exponential failure rate limiter, with jitter so that
objects that failed together do not retry together: 1 s, 2 s, 4 s ... capped at 5 minutes.
"""

import heapq
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Backoff", "WorkQueue", "jittered"]

JITTER = 0.2  # +-20 %
K = TypeVar("K", bound=Hashable)


def jittered(seconds: float, rng: Callable[[float, float], float] = random.uniform) -> float:
    """`seconds` spread by +-20 %, so objects created together drift apart."""
    return seconds * rng(1 - JITTER, 1 + JITTER)


class WorkQueue(Generic[K]):
    """Keys waiting for a worker; delayed keys wake up by themselves."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._ready: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._due: dict[K, float] = {}  # the one scheduled wake-up of each key
        self._heap: list[tuple[float, int, K]] = []  # entries not matching _due are stale
        self._order = itertools.count()
        self._closed = False

    def add(self, key: K) -> None:
        """Look at `key` as soon as a worker is free."""
        with self._cond:
            self._add(key)

    def _add(self, key: K) -> None:
        if self._closed or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._ready.append(key)
            self._cond.notify()

    def schedule(self, key: K, delay: float | None) -> None:
        """Look at `key` again after `delay` seconds (None: not at all, unless added)."""
        with self._cond:
            if delay is None:
                self._due.pop(key, None)
                return
            due = self._clock() + max(delay, 0.0)
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._order), key))
            self._cond.notify()

    def forget(self, key: K) -> None:
        """The object is gone: drop its scheduled wake-up (a pending add still runs once)."""
        with self._cond:
            self._due.pop(key, None)

    def get(self, block: bool = True) -> K | None:
        """The next key to process; None once the queue is shut down (or, without `block`,
        when no key is ready now)."""
        with self._cond:
            while not self._closed:
                timeout = self._wake_due()
                if self._ready:
                    key = self._ready.popleft()
                    self._processing.add(key)
                    self._dirty.discard(key)
                    return key
                if not block:
                    return None
                self._cond.wait(timeout)
            return None

    def _wake_due(self) -> float | None:
        """Move keys whose time has come to the ready queue; seconds until the next one."""
        now = self._clock()
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # rescheduled or cancelled since
                continue
            if due > now:
                return due - now
            heapq.heappop(self._heap)
            del self._due[key]
            self._add(key)
        return None

    def done(self, key: K) -> None:
        """The worker finished `key`; if it was added meanwhile, it is ready again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._ready.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        """Keys ready or being processed (not those scheduled for later)."""
        with self._cond:
            return len(self._dirty | self._processing)

    def scheduled(self) -> int:
        """Keys with a scheduled wake-up."""
        with self._cond:
            return len(self._due)

    def due_in(self, key: K) -> float | None:
        """Seconds until `key` is looked at again by schedule (None: not scheduled)."""
        with self._cond:
            due = self._due.get(key)
            return None if due is None else due - self._clock()


class Backoff(Generic[K]):
    """How long to wait before retrying a key that failed `n` times in a row."""

    def __init__(
        self,
        base: float = 1.0,
        cap: float = 300.0,
        rng: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.base, self.cap, self._rng = base, cap, rng
        self._failures: dict[K, int] = {}
        self._lock = threading.Lock()

    def failed(self, key: K) -> float:
        """Record one more failure of `key`; the delay before its next attempt."""
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        return min(jittered(self.base * 2.0 ** min(failures, 32), self._rng), self.cap)

    def failures(self, key: K) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        """`key` succeeded (or is gone): its next failure starts from `base` again."""
        with self._lock:
            self._failures.pop(key, None)
