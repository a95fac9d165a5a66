"""Events are posted by a thread of their own: a pass never waits for a courtesy.

An Event tells people what happened (`kubectl describe`); nothing depends on it being
posted, so a pass hands its Events over and moves on to the next object. The queue is
bounded: when the apiserver is so slow that thousands wait, newer ones are dropped with
a log line rather than holding the operator's memory.
"""

import logging
import queue
import threading
from typing import Any

from ctrain.controller.kube import Kube

__all__ = ["EventPoster"]

log = logging.getLogger("ctrain.operator")
LIMIT = 10_000
_STOP = None


class EventPoster:
    """`post` queues an Event; one thread posts them in order."""

    def __init__(self, kube: Kube, limit: int = LIMIT) -> None:
        self._kube = kube
        self._queue: queue.Queue[tuple[dict[str, Any], str, str, bool] | None] = queue.Queue(limit)
        self._thread = threading.Thread(target=self._work, name="events", daemon=True)
        self._dropped = 0

    def post(self, body: dict[str, Any], reason: str, message: str, warning: bool) -> None:
        try:
            self._queue.put_nowait((body, reason, message, warning))
        except queue.Full:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning("%d Events dropped: the apiserver does not keep up", self._dropped)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _work(self) -> None:
        while (item := self._queue.get()) is not _STOP:
            body, reason, message, warning = item
            self._kube.event(body, reason, message, warning=warning)
