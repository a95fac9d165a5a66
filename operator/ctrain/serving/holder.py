"""The model lifecycle: `load()` → ready, or refused and retried, never a crash.

A serving pod whose model cannot load (missing, sha256 mismatch, untrusted types,
storage down) stays alive and NOT ready, like KServe's model server: Kubernetes keeps
the previous ReplicaSet serving, the reason is logged and shown in the readiness
bodies, and `ModelDeployment` can report it. A background task retries with
exponential backoff, so a transient storage outage heals by itself.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import logging
import time
from typing import Any

from ctrain.serving.drift import DriftMonitor
from ctrain.serving.errors import ModelLoadError, ModelNotReady
from ctrain.serving.metrics import ServingMetrics
from ctrain.serving.model import ServedModel
from ctrain.serving.source import ModelSource

__all__ = ["ModelHolder", "ModelState"]

log = logging.getLogger(__name__)


class ModelState(enum.StrEnum):
    LOADING = "Loading"
    READY = "Ready"
    FAILED = "Failed"


class ModelHolder:
    """Owns the served model and its state; the app asks it for the model per request."""

    def __init__(
        self,
        name: str,
        source: ModelSource,
        *,
        version: str = "1",
        metrics: ServingMetrics | None = None,
        drift_window: int = 5000,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        freeze_gc: bool = False,
    ) -> None:
        self.name = name
        self.version = version  # as requested; the loaded metadata has the final word
        self.source = source
        self.metrics = metrics
        self.drift_window = drift_window
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.freeze_gc = freeze_gc
        self.state = ModelState.LOADING
        self.reason = "Loading"
        self.message = f"model {name} is loading"
        self.model: ServedModel | None = None
        self.drift: DriftMonitor | None = None

    @property
    def ready(self) -> bool:
        return self.model is not None

    def require(self) -> ServedModel:
        """The model, or ModelNotReady with why not (503)."""
        model = self.model
        if model is None:
            raise ModelNotReady(f"model {self.name} is not ready: {self.message}")
        return model

    def status(self) -> dict[str, Any]:
        """The JSON the readiness endpoints return."""
        body: dict[str, Any] = {"name": self.name, "ready": self.ready, "state": str(self.state)}
        if self.model is not None:
            body["version"] = self.model.version
        else:
            body["reason"] = self.reason
            body["message"] = self.message
        return body

    def load(self) -> ServedModel:
        """Load once (blocking). Raises ModelLoadError, leaving the holder FAILED."""
        log.info("loading model %s from %s", self.name, self.source.description)
        started = time.monotonic()
        try:
            loaded = self.source.load()
            model = ServedModel.from_loaded(self.name, loaded, default_version=self.version)
            drift = None
            if loaded.reference is not None:
                drift = DriftMonitor(model.features, loaded.reference, self.drift_window)
        except ModelLoadError as exc:
            self._failed(exc.reason, str(exc))
            raise
        except Exception as exc:  # a bug or an odd file: report it, stay alive
            log.exception("unexpected error while loading model %s", self.name)
            self._failed("LoadFailed", f"{type(exc).__name__}: {exc}")
            raise ModelLoadError("LoadFailed", str(exc)) from exc
        declared = loaded.metadata.get("model")
        if declared and declared != self.name:
            log.warning("serving model %r under the name %r", declared, self.name)
        if drift is None or not drift.enabled:
            log.warning("model %s has no usable reference statistics: drift is off", self.name)
        self.drift = drift if drift is not None and drift.enabled else None
        self.model = model
        self.state, self.reason, self.message = ModelState.READY, "Ready", "model is ready"
        if self.metrics is not None:
            self.metrics.model_ready(model.version, _estimator_name(model.estimator))
        log.info(
            "model %s version %s loaded in %.2fs: %s, %d features, outputs %s",
            self.name, model.version, time.monotonic() - started, _estimator_name(model.estimator),
            len(model.features), ", ".join(model.spec.output_names),
        )  # fmt: skip
        if self.freeze_gc:
            # The model's objects live as long as the process: keep them out of the
            # collector's generations so collections during requests stay short.
            gc.collect()
            gc.freeze()
        log.info("model %s is ready", self.name)
        return model

    async def load_until_ready(self) -> None:
        """Load in a worker thread; on failure retry with exponential backoff, forever."""
        delay = self.retry_initial
        while True:
            try:
                await asyncio.to_thread(self.load)
                return
            except ModelLoadError:
                log.error(
                    "model %s is not ready (%s): %s; retrying in %.3gs",
                    self.name, self.reason, self.message, delay,
                )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    def _failed(self, reason: str, message: str) -> None:
        self.state, self.reason, self.message = ModelState.FAILED, reason, message
        if self.metrics is not None:
            self.metrics.model_failed(reason)


def _estimator_name(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    names = [type(step).__name__ for _, step in steps] if steps else [type(estimator).__name__]
    return "+".join(names)
