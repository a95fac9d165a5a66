"""One inference request, from admission to response bytes, within the server's limits.

Two paths, chosen per request:

- small (the common case, kept as fast as it was): the body is parsed on the event loop
  and its rows join the micro-batcher (`ctrain.serving.batching`);
- large (a body over `LARGE_BODY_BYTES`, or more rows than one micro-batch): parsing,
  prediction and encoding run in one worker thread, one large request after another,
  so a request of the largest allowed size never holds the event loop: health checks
  and small requests are answered meanwhile.

A sampled request is handed to the prediction log (`ctrain.serving.predlog`) with the
outputs the log needs; the log only appends it to a list.

Admission happens before the body is read: at most `max_concurrency` requests in
progress and `max_inflight_bytes` of request bodies held; past that the answer is 503
with `Retry-After`, which costs the server almost nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ctrain.serving.batching import MicroBatcher, classify
from ctrain.serving.codec import BINARY_HEADER, InferRequest
from ctrain.serving.errors import InvalidRequest, Overloaded
from ctrain.serving.limits import (
    LARGE_BODY_BYTES,
    RETRY_AFTER_SECONDS,
    Limits,
    Receive,
    content_length,
    read_body,
)
from ctrain.serving.model import ServedModel
from ctrain.serving.predlog import PredictionLogger

__all__ = ["Inference", "Predicted"]

# Called after each prediction: (model, rows predicted, requests in that call).
BatchObserver = Callable[[ServedModel, np.ndarray, int], None]


@dataclass(slots=True)
class Predicted:
    """A request and its answer: what the prediction log records."""

    request: InferRequest
    values: dict[str, np.ndarray]  # output name -> this request's rows
    body: bytes  # the response
    sampled: bool = False  # for the prediction log


class Inference:
    """Admits, decodes, predicts and encodes inference requests."""

    def __init__(
        self,
        limits: Limits,
        batcher: MicroBatcher,
        observer: BatchObserver,
        prediction_log: PredictionLogger | None = None,
    ) -> None:
        self.limits = limits
        self.batcher = batcher
        self._observer = observer
        self.prediction_log = prediction_log
        self.inflight = 0  # requests in progress
        self.inflight_bytes = 0  # bytes of their bodies, reserved before reading
        # One thread: large requests run one after another, each on one core, and the
        # event loop keeps the other (and the GIL between numpy/scikit-learn calls).
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ctrain-large")

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def __call__(
        self, model: ServedModel, headers: list[tuple[bytes, bytes]], receive: Receive
    ) -> Predicted:
        """Answer one request (and log it, if it is sampled)."""
        received = time.time()
        limits = self.limits
        length = content_length(headers, limits.max_body_bytes)
        json_length = _json_length(headers)
        if self.inflight >= limits.max_concurrency:
            raise Overloaded(
                f"the server is busy: {self.inflight} requests in progress, retry later",
                RETRY_AFTER_SECONDS,
            )
        held = 0

        def reserve(size: int) -> None:
            nonlocal held
            if self.inflight_bytes + size > limits.max_inflight_bytes:
                raise Overloaded(
                    f"the server is busy: {self.inflight_bytes} bytes of requests in progress, "
                    "retry later",
                    RETRY_AFTER_SECONDS,
                )
            self.inflight_bytes += size
            held += size

        if length is not None:
            reserve(length)
        self.inflight += 1
        try:
            body = await read_body(
                receive, limits.max_body_bytes, reserve if length is None else None
            )
            if len(body) > LARGE_BODY_BYTES:
                predicted = await self._off_loop(model, body, json_length)
            else:
                request = model.spec.decode(body, json_length, limits)
                if len(request.rows) > self.batcher.max_rows:
                    predicted = await self._off_loop(model, request, None)
                else:
                    outputs, sampled = self._outputs(model, request)
                    values = await self.batcher.predict(model, request.rows, outputs)
                    body = _encode(model, request, values)
                    predicted = Predicted(request, values, body, sampled)
            if predicted.sampled and self.prediction_log is not None:
                self.prediction_log.record(model, predicted.request, predicted.values, received)
            return predicted
        finally:
            self.inflight -= 1
            self.inflight_bytes -= held

    def _outputs(self, model: ServedModel, request: InferRequest) -> tuple[tuple[str, ...], bool]:
        """(what to predict, sampled?): the request's outputs, or more for the log."""
        if self.prediction_log is not None:
            logged = self.prediction_log.prepare(model, request)
            if logged is not None:
                return logged, True
        return request.outputs, False

    async def _off_loop(
        self, model: ServedModel, body: bytes | InferRequest, json_length: int | None
    ) -> Predicted:
        def work() -> Predicted:
            if isinstance(body, InferRequest):
                request = body
            else:
                request = model.spec.decode(body, json_length, self.limits)
            outputs, sampled = self._outputs(model, request)
            try:
                values = model.predict_batch(request.rows, outputs)
            except Exception as exc:  # classified for the client: 400 or 500
                raise classify(exc) from exc
            return Predicted(request, values, _encode(model, request, values), sampled)

        loop = asyncio.get_running_loop()
        predicted = await loop.run_in_executor(self._executor, work)
        self._observer(model, predicted.request.rows, 1)
        return predicted


def _json_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == BINARY_HEADER:
            if not value.isdigit():
                raise InvalidRequest(f"invalid {BINARY_HEADER.decode()} header")
            return int(value)
    return None


def _encode(model: ServedModel, request: InferRequest, values: dict[str, Any]) -> bytes:
    return model.encoder.encode(request.id, request.outputs, values)
