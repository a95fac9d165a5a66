"""Adaptive micro-batching: concurrent requests share one `predict` call.

scikit-learn's per-call overhead (input validation, tags, namespace checks) is far
larger than the arithmetic of a few rows, so under load the server runs one call for
everything that is waiting. There is no fixed wait: one worker task sleeps until a
request arrives, then takes every request queued so far (up to `max_rows` rows), runs
the estimator inline on the event loop, and hands each request its own slice. While
it predicts, new requests queue up in the sockets and form the next batch, so batches
grow with load and stay at one request when idle.

Responses cannot be mixed up: each request owns a callback and the slice
`[offset, offset + rows)` of the concatenated batch, in the order it was queued. If
the estimator raises on a batch, each request is retried alone so one bad input only
fails its own request. Callbacks (`submit`) run right after the batch, in the worker:
the direct HTTP path writes its responses from there without waking a task per
request; `predict` wraps one in a future for code that awaits.

The queue is bounded in rows (`max_queue_rows`): past it a request is refused at once
with 503 and `Retry-After` instead of waiting behind more work than it can afford.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ctrain.serving.errors import (
    InvalidRequest,
    ModelNotReady,
    Overloaded,
    PredictionFailed,
    ServingError,
)
from ctrain.serving.limits import DEFAULT_LIMITS, RETRY_AFTER_SECONDS
from ctrain.serving.model import ServedModel

__all__ = ["DEFAULT_MAX_ROWS", "BatchObserver", "MicroBatcher", "classify"]

log = logging.getLogger(__name__)

# scikit-learn's per-call overhead dominates up to hundreds of rows for linear models;
# bigger batches would only hold the event loop longer for heavy ones (forests).
DEFAULT_MAX_ROWS = 512

# Called after each successful estimator call: (model, rows predicted, requests in it).
BatchObserver = Callable[[ServedModel, np.ndarray, int], None]
# Called once per request: (its slice of every output, None) or (None, the error).
Done = Callable[[dict[str, np.ndarray] | None, ServingError | None], None]


@dataclass(slots=True)
class _Pending:
    model: ServedModel
    rows: np.ndarray
    outputs: tuple[str, ...]
    done: Done


class MicroBatcher:
    """Coalesces concurrent predictions into batches of at most `max_rows` rows."""

    def __init__(
        self,
        max_rows: int = DEFAULT_MAX_ROWS,
        observer: BatchObserver | None = None,
        *,
        max_queue_rows: int = DEFAULT_LIMITS.max_queue_rows,
    ) -> None:
        if max_rows < 1 or max_queue_rows < 1:
            raise ValueError("max_rows and max_queue_rows must be at least 1")
        self.max_rows = max_rows
        self.max_queue_rows = max_queue_rows
        self._observer = observer
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._wakeup: asyncio.Future[None] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def predict(
        self, model: ServedModel, rows: np.ndarray, outputs: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """Predict `outputs` for `rows`, batched with whatever else is waiting."""
        future: asyncio.Future[dict[str, np.ndarray]] = asyncio.get_running_loop().create_future()

        def done(values: dict[str, np.ndarray] | None, error: ServingError | None) -> None:
            if future.done():  # the caller was cancelled
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(values)  # type: ignore[arg-type]

        self.submit(model, rows, outputs, done)
        return await future

    def submit(
        self, model: ServedModel, rows: np.ndarray, outputs: tuple[str, ...], done: Done
    ) -> None:
        """Queue `rows`; `done` is called once, after their batch (never from here).

        Raises Overloaded (and queues nothing) when the queue is full.
        """
        if self._queued_rows + len(rows) > self.max_queue_rows:
            raise Overloaded(
                f"the server is busy: {self._queued_rows} rows wait for prediction, retry later",
                RETRY_AFTER_SECONDS,
            )
        worker, loop = self._worker, asyncio.get_running_loop()
        if worker is None or worker.done() or worker.get_loop() is not loop:
            self._worker = loop.create_task(self._run(), name="ctrain-micro-batcher")
        self._queue.append(_Pending(model, rows, outputs, done))
        self._queued_rows += len(rows)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def aclose(self) -> None:
        """Stop the worker; requests still queued fail as not ready (503)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.wait([self._worker])  # waits without re-raising its cancellation
            self._worker = None
        self._queued_rows = 0
        while self._queue:
            _call(self._queue.popleft().done, None, ModelNotReady("the server is shutting down"))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
                # Give the requests parsed in this turn of the loop a turn to join: keep
                # yielding (no timer: a few microseconds) while each turn adds requests.
                waiting = 0
                while waiting != len(self._queue) and len(self._queue) < self.max_rows:
                    waiting = len(self._queue)
                    await asyncio.sleep(0)
            self._run_batch(self._take())
            # Let the answered requests send their responses (and new ones arrive)
            # before the next batch.
            await asyncio.sleep(0)

    def _take(self) -> list[_Pending]:
        first = self._queue.popleft()
        batch, rows = [first], len(first.rows)
        while self._queue:
            nxt = self._queue[0]
            if nxt.model is not first.model or rows + len(nxt.rows) > self.max_rows:
                break
            batch.append(self._queue.popleft())
            rows += len(nxt.rows)
        self._queued_rows -= rows
        return batch

    def _run_batch(self, live: list[_Pending]) -> None:
        model = live[0].model
        outputs: tuple[str, ...] | set[str] = live[0].outputs
        rows = live[0].rows
        try:
            if len(live) > 1:
                rows = np.concatenate([p.rows for p in live])
                outputs = {name for p in live for name in p.outputs}
            result = model.predict_batch(rows, outputs)
        except Exception as exc:  # noqa: BLE001 - the estimator's failure goes to its caller
            if len(live) == 1:
                _call(live[0].done, None, classify(exc))
            else:
                for pending in live:  # find the culprit: each request alone
                    self._run_batch([pending])
            return
        if len(live) == 1:
            _call(live[0].done, result, None)
        else:
            offset = 0
            for pending in live:
                end = offset + len(pending.rows)
                _call(pending.done, {name: result[name][offset:end] for name in pending.outputs},
                      None)  # fmt: skip
                offset = end
        if self._observer is not None:
            try:
                self._observer(model, rows, len(live))
            except Exception:  # monitoring must never fail predictions
                log.exception("batch observer failed")


def _call(done: Done, values: dict[str, np.ndarray] | None, error: ServingError | None) -> None:
    try:
        done(values, error)
    except Exception:  # one request's callback must never fail the others
        log.exception("a prediction callback failed")


def classify(exc: Exception) -> ServingError:
    """The client's error (400) or ours (500) for an exception the estimator raised."""
    # scikit-learn raises ValueError/TypeError for inputs it cannot use (NaN, unknown
    # categories, strings in numeric columns): the client's fault. Anything else is ours.
    if isinstance(exc, ValueError | TypeError):
        return InvalidRequest(f"the model rejected the input: {exc}")
    log.error("predict failed", exc_info=exc)
    return PredictionFailed(f"prediction failed: {type(exc).__name__}: {exc}")
