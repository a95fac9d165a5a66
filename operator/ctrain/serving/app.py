"""The HTTP surface of `ctrain serve`: a plain ASGI app, Open Inference Protocol v2.

Raw ASGI rather than a framework: the routes are few and fixed, and on uvicorn with
httptools, uvloop and orjson nothing sits between the socket and the model but this
module. Routes:

    GET  /v2/health/live                     200 {"live": true}
    GET  /v2/health/ready                    200 / 503 with the model's state and reason
    GET  /v2                                 server metadata
    GET  /v2/models/<name>[/versions/<v>]    model metadata (503 until loaded)
    GET  /v2/models/<name>[/versions/<v>]/ready
    POST /v2/models/<name>[/versions/<v>]/infer
    GET  /metrics                            Prometheus
    GET  /drift                              drift statistics for the operator (JSON)

Every failure is a `ServingError` rendered as `{"error": "..."}` with its status code
(and its headers: `Retry-After`, `connection: close`); the app never lets an exception
escape to uvicorn, so bad input cannot stop it. What one request may cost is bounded by
`ctrain.serving.limits`; the inference path itself is `ctrain.serving.inference`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson

import ctrain
from ctrain.api.contracts import DriftReport
from ctrain.serving.batching import DEFAULT_MAX_ROWS, MicroBatcher
from ctrain.serving.drift import DriftMonitor, DriftSnapshot
from ctrain.serving.errors import (
    MethodNotAllowed,
    ModelNotReady,
    NotFound,
    ServingError,
)
from ctrain.serving.holder import ModelHolder
from ctrain.serving.inference import Inference
from ctrain.serving.limits import DEFAULT_LIMITS, Limits
from ctrain.serving.metrics import CONTENT_TYPE, ServingMetrics
from ctrain.serving.model import ServedModel
from ctrain.serving.predlog import PredictionLogger

__all__ = ["ServingApp"]

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Peers(Protocol):
    """The other worker processes of the pod (`ctrain.serving.workers`), if any."""

    def start(self) -> None: ...

    async def close(self) -> None: ...

    def drift(self, drift: DriftMonitor, version: str) -> DriftSnapshot: ...


_JSON = b"application/json"
_LIVE = orjson.dumps({"live": True})


class ServingApp:
    """ASGI application serving the model of one `ModelHolder`."""

    def __init__(
        self,
        holder: ModelHolder,
        *,
        metrics: ServingMetrics | None = None,
        max_batch_rows: int = DEFAULT_MAX_ROWS,
        limits: Limits = DEFAULT_LIMITS,
        prediction_log: PredictionLogger | None = None,
    ) -> None:
        self.holder = holder
        self.limits = limits
        self.metrics = metrics if metrics is not None else ServingMetrics(holder.name)
        if holder.metrics is None:
            holder.metrics = self.metrics
        self.metrics.watch_drift(self._drift_snapshot)
        self.batcher = MicroBatcher(
            max_batch_rows, observer=self._observed_batch, max_queue_rows=limits.max_queue_rows
        )
        self.prediction_log = prediction_log
        self.inference = Inference(limits, self.batcher, self._observed_batch, prediction_log)
        self.metrics.watch_load(lambda: (self.inference.inflight, self.inference.inflight_bytes))
        self._direct_routes: tuple[ServedModel, frozenset[bytes]] | None = None
        self.peers: Peers | None = None  # set by ctrain.serving.workers with --workers
        self.ready_wait = 0.0  # seconds startup waits for the model (see `startup`)
        self._loader: asyncio.Task[None] | None = None
        self._server_metadata = orjson.dumps(
            {"name": "ctrain", "version": ctrain.__version__, "extensions": []}
        )

    # -- lifecycle -------------------------------------------------------------------

    async def startup(self) -> None:
        """Start loading the model in the background; the server answers meanwhile.

        With `ready_wait`, wait that long for the model first: uvicorn accepts
        connections only after this returns, so a worker of `--workers N` that is still
        loading leaves the shared port to the workers that can answer. After the wait
        it accepts anyway, to answer the probes with the reason it is not ready.
        """
        if self._loader is None and not self.holder.ready:
            self._loader = asyncio.create_task(self.holder.load_until_ready(), name="load")
            if self.ready_wait > 0:
                await asyncio.wait([self._loader], timeout=self.ready_wait)
        if self.prediction_log is not None:
            self.prediction_log.start()
        if self.peers is not None:
            self.peers.start()

    async def shutdown(self) -> None:
        log.info("shutting down: model %s", self.holder.name)
        if self._loader is not None:
            self._loader.cancel()
            await asyncio.wait([self._loader])
            self._loader = None
        await self.batcher.aclose()
        self.inference.close()
        if self.prediction_log is not None:
            await self.prediction_log.close()  # after the last request: nothing is lost
        if self.peers is not None:
            await self.peers.close()  # the final counts, for the workers that stay

    def direct_model(self, method: bytes, url: bytes) -> ServedModel | None:
        """The model if `url` is exactly one of its /infer routes and `method` is POST.

        `ctrain.serving.protocol` then answers the request directly; anything else
        (another route, a query string, a model not loaded yet) comes through ASGI.
        """
        model = self.holder.model
        if model is None or method != b"POST":
            return None
        routes = self._direct_routes
        if routes is None or routes[0] is not model:
            base = f"/v2/models/{model.name}"
            paths = {f"{base}/infer".encode(), f"{base}/versions/{model.version}/infer".encode()}
            routes = self._direct_routes = (model, frozenset(paths))
        return model if url in routes[1] else None

    @property
    def inflight(self) -> int:
        """Inference requests in progress."""
        return self.inference.inflight

    # -- ASGI ------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        route = "other"
        content_type = _JSON
        headers: tuple[tuple[bytes, bytes], ...] = ()
        try:
            if path.endswith("/infer"):
                route = "infer"
                status, body = 200, await self._infer(scope, receive, path)
            else:
                route, status, body, content_type = self._get(scope, path)
        except ServingError as exc:
            status, body, headers = exc.status, orjson.dumps({"error": str(exc)}), exc.headers
            self.metrics.observe_error(route, type(exc).__name__)
        except Exception as exc:  # answered as 500: the server keeps serving
            log.exception("error handling %s %s", scope["method"], path)
            status, body = 500, orjson.dumps({"error": f"internal error: {type(exc).__name__}"})
            self.metrics.observe_error(route, "InternalError")
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        self.metrics.observe_request(route, status, time.perf_counter() - started)

    # -- inference -------------------------------------------------------------------

    async def _infer(self, scope: Scope, receive: Receive, path: str) -> bytes:
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"use POST for {path}")
        model = self._model_for(path.split("/"), suffix="infer")
        predicted = await self.inference(model, scope["headers"], receive)
        return predicted.body

    def _model_for(self, parts: list[str], suffix: str | None) -> ServedModel:
        """Resolve /v2/models/<name>[/versions/<v>][/<suffix>] to the loaded model."""
        tail = parts[4:]
        if suffix is not None:
            if not tail or tail[-1] != suffix:
                raise NotFound("not found")
            tail = tail[:-1]
        if len(parts) < 4 or parts[1] != "v2" or parts[2] != "models" or parts[0]:
            raise NotFound("not found")
        if tail and (len(tail) != 2 or tail[0] != "versions"):
            raise NotFound("not found")
        name = parts[3]
        if name != self.holder.name:
            raise NotFound(f"model {name!r} not found")
        model = self.holder.require()
        if tail and tail[1] != model.version:
            raise NotFound(f"model {name!r} has no version {tail[1]!r} (serving {model.version})")
        return model

    # -- everything else -------------------------------------------------------------

    def _get(self, scope: Scope, path: str) -> tuple[str, int, bytes, bytes]:
        """(route, status, body, content type) of the non-inference routes."""
        if scope["method"] not in ("GET", "HEAD"):
            raise MethodNotAllowed(f"method {scope['method']} not allowed on {path}")
        if path == "/v2/health/live":
            return "live", 200, _LIVE, _JSON
        if path == "/v2/health/ready":
            status = self.holder.status()
            return "ready", 200 if status["ready"] else 503, orjson.dumps(status), _JSON
        if path == "/metrics":
            return "metrics", 200, self.metrics.render(), CONTENT_TYPE
        if path == "/drift":
            return "drift", 200, self._drift_body(), _JSON
        if path in ("/v2", "/v2/"):
            return "server_metadata", 200, self._server_metadata, _JSON
        parts = path.rstrip("/").split("/")
        if path.endswith("/ready"):
            with contextlib.suppress(ModelNotReady):
                self._model_for(parts, suffix="ready")
            status = self.holder.status()
            return "model_ready", 200 if status["ready"] else 503, orjson.dumps(status), _JSON
        return "metadata", 200, self._model_for(parts, suffix=None).metadata_body, _JSON

    def _drift_body(self) -> bytes:
        model = self.holder.require()
        drift = self.holder.drift
        if drift is None:
            raise NotFound(f"model {model.name} version {model.version} has no drift statistics")
        snapshot = self._pod_drift(drift, model.version)
        report = DriftReport(
            model=model.name,
            version=model.version,
            samples=snapshot.samples,
            score=snapshot.score,
            features=snapshot.features,
            reference=model.loaded.reference_uri,
            computed_at=datetime.now(UTC),
        )
        return orjson.dumps(report.to_wire())

    def _drift_snapshot(self) -> tuple[str, str, DriftSnapshot] | None:
        model, drift = self.holder.model, self.holder.drift
        if model is None or drift is None:
            return None
        return model.name, model.version, self._pod_drift(drift, model.version)

    def _pod_drift(self, drift: DriftMonitor, version: str) -> DriftSnapshot:
        """This process's window, or with --workers every worker's windows together."""
        return drift.snapshot() if self.peers is None else self.peers.drift(drift, version)

    def _observed_batch(self, model: ServedModel, rows: np.ndarray, requests: int) -> None:
        self.metrics.observe_batch(requests, len(rows))
        drift = self.holder.drift
        if drift is not None and model is self.holder.model:
            drift.observe(rows)
