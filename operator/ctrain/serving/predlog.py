"""Prediction logging, off the hot path: sampled requests to Parquet objects in S3.

The label join (ground truth that arrives later) needs every served row with its id
and prediction, so serving pods write them to the model's registry storage
(`<prefix>/<model>/predictions/<yyyy>/<mm>/<dd>/<pod>-<n>.parquet`, columns in
`ctrain.serving.predtable`, both documented in docs/contracts.md). Like KServe's
payload logger, the request path only appends a reference to what it already has; a
background task converts and writes.

- Sampling is by request (`sample_rate`): all rows of a request or none of them, so a
  multi-row request is never half-logged. A request without an `id` gets one (32 hex
  digits: a random prefix per process and a counter, unique without a UUID's cost per
  request), returned in the response, so its client can upload labels for it.
- Every `flush_seconds`, or as soon as `max_object_rows` rows wait, the rows become one
  object per (model, UTC day). Object names never repeat: `<n>` is the process start
  time in milliseconds, its pid (one per worker) and a sequence number, so neither a
  container restart in the same pod nor another worker can overwrite an object.
- Bounded: buffered rows plus rows of objects not yet written stay under
  `max_buffer_rows`. When storage is down longer than that allows, new rows are dropped
  and counted (`ctrain_serving_prediction_log_rows_dropped_total{reason}`); inference
  never waits for storage and never fails because of it. Unwritten objects are retried
  with the same key (same bytes), so a retry cannot duplicate rows.
- `close()` (the app's shutdown, on SIGTERM after in-flight requests are answered)
  writes what is left within `shutdown_seconds`, so a rollout loses no logged rows.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError

from ctrain.registry.layout import Layout
from ctrain.serving.codec import InferRequest
from ctrain.serving.metrics import ServingMetrics
from ctrain.serving.model import ServedModel
from ctrain.serving.predtable import LoggedRequest, TableLayout, parquet_bytes
from ctrain.storage import SSE_TYPES, encryption_args

__all__ = [
    "SSE_TYPES",
    "PredictionLogSettings",
    "PredictionLogger",
    "S3Sink",
    "Sink",
    "encryption_args",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionLogSettings:
    """What to log and how often (ModelDeployment `spec.monitoring.predictionLog`)."""

    sample_rate: float = 1.0
    flush_seconds: float = 30.0
    exclude_columns: tuple[str, ...] = ()
    max_buffer_rows: int = 100_000
    max_object_rows: int = 50_000
    shutdown_seconds: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_rate <= 1.0:
            raise ValueError(f"sample rate must be within [0, 1], got {self.sample_rate}")
        if min(self.flush_seconds, self.max_buffer_rows, self.max_object_rows) <= 0:
            raise ValueError("flush seconds and buffer sizes must be positive")


class Sink(Protocol):
    """Where objects go: `put` raises BotoCoreError/ClientError when it cannot."""

    def put(self, key: str, body: bytes) -> None: ...


@dataclass
class S3Sink:
    """Objects written with put_object, with the configured server-side encryption."""

    client: Any
    bucket: str
    encryption: dict[str, str]

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/vnd.apache.parquet",
            **self.encryption,
        )  # fmt: skip


@dataclass(frozen=True)
class _Object:
    key: str
    body: bytes
    rows: int


class PredictionLogger:
    """Buffers sampled predictions and writes them as Parquet objects in the background."""

    def __init__(
        self,
        settings: PredictionLogSettings,
        sink: Sink,
        layout: Layout,
        *,
        pod: str,
        metrics: ServingMetrics | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.layout = layout
        self._rng = rng or random.Random()
        self._clock = clock
        self._prefix = f"{pod}-{round(clock() * 1000)}-{os.getpid()}"
        self._id_prefix = secrets.token_hex(8)
        self._ids = itertools.count()
        self._sequence = 0
        self._pending: list[LoggedRequest] = []
        self._pending_rows = 0
        self._building = 0  # rows being turned into objects by a flush
        self._unwritten: list[_Object] = []  # built, not yet accepted by storage
        self._tables: dict[int, TableLayout] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        add = (metrics or ServingMetrics("-")).add  # a set of its own, unexported, if none
        self.rows_written = add("ctrain_serving_prediction_log_rows_written",
                                "Logged rows written to storage", "counter")  # fmt: skip
        self.objects_written = add("ctrain_serving_prediction_log_objects_written",
                                   "Prediction log objects written", "counter")  # fmt: skip
        self.write_failures = add("ctrain_serving_prediction_log_write_failures",
                                  "Failed writes of log objects", "counter")  # fmt: skip
        self.rows_dropped = add("ctrain_serving_prediction_log_rows_dropped",
                                "Sampled rows never written, by reason", "counter",
                                ("reason",))  # fmt: skip
        # Kept current by every change of the buffer, so workers can publish it.
        self.buffered = add("ctrain_serving_prediction_log_buffered_rows",
                            "Logged rows held in memory, waiting to be written",
                            "gauge")  # fmt: skip
        self.buffered.set((), 0)

    @property
    def buffered_rows(self) -> int:
        """Rows held in memory: waiting for a flush, or in objects storage refused."""
        return self._pending_rows + self._building + sum(o.rows for o in self._unwritten)

    # -- the hot path --------------------------------------------------------------------

    def prepare(self, model: ServedModel, request: InferRequest) -> tuple[str, ...] | None:
        """Give the request an id; if it is sampled, the outputs the log needs."""
        if request.id is None:
            request.id = f"{self._id_prefix}{next(self._ids):016x}"
        rate = self.settings.sample_rate
        if rate < 1.0 and self._rng.random() >= rate:
            return None
        every = model.spec.output_names
        if request.outputs is every:
            return every
        return tuple(dict.fromkeys(request.outputs + every))

    def record(
        self,
        model: ServedModel,
        request: InferRequest,
        values: dict[str, np.ndarray],
        received: float,
    ) -> None:
        """Keep a sampled request's rows for the next flush, or drop and count them."""
        n = len(request.rows)
        if self._closed or self.buffered_rows + n > self.settings.max_buffer_rows:
            self.rows_dropped.inc(("shutdown" if self._closed else "buffer_full",), n)
            return
        assert request.id is not None  # prepare() gave it one
        self._pending.append(LoggedRequest(model, request.id, received, request.rows, values))
        self._pending_rows += n
        self.buffered.set((), self.buffered_rows)
        if self._pending_rows >= self.settings.max_object_rows:
            self._wake.set()

    # -- the background task -------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="predlog")

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.settings.flush_seconds):
                    await self._wake.wait()
            except TimeoutError:
                pass  # the regular flush
            self._wake.clear()
            await self.flush()

    async def flush(self) -> None:
        """Retry unwritten objects, then write the buffered rows; one flush at a time."""
        async with self._lock:
            entries, self._pending = self._pending, []
            self._building, self._pending_rows = self._pending_rows, 0
            try:
                if entries:
                    self._unwritten += await asyncio.to_thread(self._build, entries)
            finally:
                self._building = 0
                self.buffered.set((), self.buffered_rows)
            while self._unwritten:
                obj = self._unwritten[0]
                try:
                    await asyncio.to_thread(self.sink.put, obj.key, obj.body)
                except (BotoCoreError, ClientError) as exc:
                    self.write_failures.inc()
                    log.warning(
                        "prediction log: cannot write %s (%d rows kept, %d buffered): %s",
                        obj.key, obj.rows, self.buffered_rows, exc,
                    )  # fmt: skip
                    return  # storage is down: keep the rest for the next flush
                self._unwritten.pop(0)
                self.buffered.set((), self.buffered_rows)
                self.rows_written.inc((), obj.rows)
                self.objects_written.inc()

    async def close(self) -> None:
        """Stop the task and write what is left, within `shutdown_seconds`."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None
        try:
            async with asyncio.timeout(self.settings.shutdown_seconds):
                await self.flush()
        except TimeoutError:
            log.error("prediction log: storage did not answer within the shutdown deadline")
        lost = self.buffered_rows
        if lost:
            self.rows_dropped.inc(("shutdown",), lost)
            log.error("prediction log: %d logged rows could not be written before exit", lost)

    def _build(self, entries: list[LoggedRequest]) -> list[_Object]:
        """One object per (model, UTC day) of the entries; runs in a worker thread."""
        groups: dict[tuple[int, date], list[LoggedRequest]] = defaultdict(list)
        for entry in entries:
            day = datetime.fromtimestamp(entry.received, UTC).date()
            groups[(id(entry.model), day)].append(entry)
        objects = []
        for (model_id, day), group in groups.items():
            model = group[0].model
            table = self._tables.get(model_id)
            if table is None:
                table = TableLayout.of(model, self.settings.exclude_columns)
                self._tables[model_id] = table
            rows = sum(len(e.rows) for e in group)
            try:
                body = parquet_bytes(table.table(group))
            except Exception:  # a bug, not storage: never retried, never fatal
                log.exception("prediction log: cannot build an object of %d rows", rows)
                self.rows_dropped.inc(("unwritable",), rows)
                continue
            self._sequence += 1
            name = f"{self._prefix}-{self._sequence:06d}"
            key = self.layout.prediction_log_key(model.name, day, name)
            objects.append(_Object(key, body, rows))
        return objects
