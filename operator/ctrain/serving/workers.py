"""`ctrain serve --workers N`: N processes share the port, and answer as one pod.

uvicorn's supervisor (`uvicorn.supervisors.Multiprocess`) binds the port once, starts N
worker processes that accept on it, restarts a worker that dies, and on SIGTERM stops
them all (each finishes its requests and flushes its prediction log). Each worker is a
fresh process (spawn) that builds the same app from the settings the supervisor put in
its environment, and loads the model itself; it starts accepting connections once its
model is loaded (or after `READY_WAIT_SECONDS`), so a restarted worker does not answer
503s while the others could answer.

A scrape or a `GET /drift` reaches one worker, but must describe the pod. So each
worker publishes its values every `PUBLISH_SECONDS` to `<state dir>/<pid>.json`
(written to a temporary file, then renamed), and the worker that answers adds the
others' to its own:

- /metrics: counters and histograms are summed over every worker that ever published,
  so a restarted worker's counts are kept and pod counters never go back (the last
  second before a crash can be lost); gauges only over live workers (published within
  `LIVE_SECONDS`), each by its rule (`ctrain.serving.metrics.Series.merge`).
- /drift: the bin counts of the live workers' windows are summed, then scored. Each
  worker keeps `--drift-window / N` rows, so together they hold the pod's last
  `--drift-window` rows (traffic is spread evenly by the kernel, roughly).

Another worker's figures are at most `PUBLISH_SECONDS` old.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ctrain.serving.app import ServingApp
from ctrain.serving.drift import DriftMonitor, DriftSnapshot
from ctrain.serving.settings import ServeSettings, build_app

__all__ = ["LIVE_SECONDS", "PUBLISH_SECONDS", "Peers", "create_app", "run_workers"]

log = logging.getLogger(__name__)

# A worker accepts connections once its model is loaded, or after this long (then it
# answers the probes with why it is not ready); within the kubelet's default liveness
# allowance (3 probes 10 s apart).
READY_WAIT_SECONDS = 20.0
# uvicorn replaces a worker that does not answer its supervisor's ping in time; loading a
# model on a busy node can take the GIL for a while, which is not a hang.
HEALTHCHECK_SECONDS = 30
SETTINGS_ENV = "CTRAIN_SERVE_SETTINGS"
STATE_ENV = "CTRAIN_SERVE_STATE_DIR"
PUBLISH_SECONDS = 1.0
LIVE_SECONDS = 5.0


def run_workers(settings: ServeSettings) -> None:
    """The supervisor: bind, start `settings.workers` workers, stop them on SIGTERM."""
    from uvicorn.supervisors import Multiprocess

    from ctrain.serving.server import uvicorn_config

    state = tempfile.mkdtemp(prefix="ctrain-serve-")
    os.environ[SETTINGS_ENV] = settings.to_json()  # the workers are spawned with it
    os.environ[STATE_ENV] = state
    config = uvicorn_config(
        f"{__name__}:create_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        limits=settings.limits,
        access_log=settings.access_log,
        timeout_worker_healthcheck=HEALTHCHECK_SECONDS,
    )
    log.info("starting %d workers on %s:%d", settings.workers, settings.host, settings.port)
    try:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    finally:
        shutil.rmtree(state, ignore_errors=True)


def create_app() -> ServingApp:
    """One worker's app (uvicorn calls this factory in each worker process)."""
    from ctrain.serving.logs import configure_logging

    settings = ServeSettings.from_json(os.environ[SETTINGS_ENV])
    configure_logging(settings.log_level, settings.log_format)
    window = math.ceil(settings.drift_window / settings.workers)
    app = build_app(dataclasses.replace(settings, drift_window=window))
    app.ready_wait = READY_WAIT_SECONDS
    Peers(Path(os.environ[STATE_ENV]), app).attach()
    return app


class Peers:
    """This worker's published values, and the other workers' of the same pod."""

    def __init__(self, directory: Path, app: ServingApp, pid: int | None = None) -> None:
        self.directory = directory
        self.app = app
        self.pid = os.getpid() if pid is None else pid
        self._task: asyncio.Task[None] | None = None

    def attach(self) -> None:
        self.app.peers = self
        self.app.metrics.peers = lambda: [p["metrics"] | {"live": p["live"]} for p in self.others()]

    # -- publishing ----------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="peers")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None
        self.publish()  # the final counts, for the workers that stay

    async def _run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(PUBLISH_SECONDS)

    def publish(self) -> None:
        snapshot: dict[str, Any] = {"pid": self.pid, "metrics": self.app.metrics.snapshot()}
        model, drift = self.app.holder.model, self.app.holder.drift
        if model is not None and drift is not None:
            samples, counts = drift.counts()
            snapshot["drift"] = {"version": model.version, "samples": samples,
                                 "counts": {f: c.tolist() for f, c in counts.items()}}  # fmt: skip
        path = self.directory / f"{self.pid}.json"
        partial = path.with_suffix(".partial")
        partial.write_bytes(orjson.dumps(snapshot))
        partial.replace(path)  # readers see the old file or the new one, never half

    # -- reading -------------------------------------------------------------------------

    def others(self) -> list[dict[str, Any]]:
        """The other workers' last snapshots, each with `live` (published lately)."""
        now = time.time()
        found = []
        for path in self.directory.glob("*.json"):
            if path.name == f"{self.pid}.json":
                continue
            with contextlib.suppress(OSError, orjson.JSONDecodeError):  # gone meanwhile
                modified = path.stat().st_mtime
                snapshot = orjson.loads(path.read_bytes())
                snapshot["live"] = now - modified < LIVE_SECONDS
                found.append(snapshot)
        return found

    def drift(self, drift: DriftMonitor, version: str) -> DriftSnapshot:
        """The pod's drift: this window's bin counts plus the live workers' windows."""
        samples, counts = drift.counts()
        for peer in self.others():
            theirs = peer.get("drift")
            if not peer["live"] or theirs is None or theirs["version"] != version:
                continue
            samples += theirs["samples"]
            for feature, found in theirs["counts"].items():
                if feature in counts:
                    counts[feature] = counts[feature] + np.asarray(found)
        return drift.score(samples, counts)
