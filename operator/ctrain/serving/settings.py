"""Everything `ctrain serve` was asked for, and the app built from it.

One frozen value (`ServeSettings`) carries the command's options, so the single-process
server and each worker of `--workers N` build the very same app (`build_app`): workers
are fresh processes that receive the settings as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ctrain.serving.app import ServingApp
from ctrain.serving.holder import ModelHolder
from ctrain.serving.limits import DEFAULT_LIMITS, Limits
from ctrain.serving.metrics import ServingMetrics
from ctrain.serving.predlog import PredictionLogger, PredictionLogSettings
from ctrain.serving.source import ModelSource

__all__ = ["ServeSettings", "build_app"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeSettings:
    """The options of one `ctrain serve`."""

    model: str
    version: str
    model_dir: str | None = None  # serve from this directory instead of the registry
    bucket: str | None = None  # the registry (and where prediction logs go)
    prefix: str = ""
    max_batch_rows: int = 512
    drift_window: int = 5000
    limits: Limits = DEFAULT_LIMITS
    prediction_log: PredictionLogSettings | None = None
    pod: str = "ctrain"  # names the prediction log objects
    sse: str | None = None  # server-side encryption of every object the server writes
    sse_kms_key_id: str | None = None
    host: str = "0.0.0.0"
    port: int = 8080
    workers: int = 1
    access_log: bool = False
    log_level: str = "info"
    log_format: str = "text"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        fields: dict[str, Any] = json.loads(text)
        fields["limits"] = Limits(**fields["limits"])
        if fields["prediction_log"] is not None:
            logged = fields["prediction_log"]
            logged["exclude_columns"] = tuple(logged["exclude_columns"])
            fields["prediction_log"] = PredictionLogSettings(**logged)
        return cls(**fields)


def build_app(settings: ServeSettings) -> ServingApp:
    """The ASGI app for `settings` (the model loads when the app starts)."""
    source = _source(settings)
    log.info("serving model %s from %s", settings.model, source.description)
    metrics = ServingMetrics(settings.model)
    holder = ModelHolder(
        settings.model,
        source,
        version=settings.version,
        metrics=metrics,
        drift_window=settings.drift_window,
        freeze_gc=True,
    )
    prediction_log = None
    if settings.prediction_log is not None:
        prediction_log = _prediction_log(settings, settings.prediction_log, metrics)
    return ServingApp(
        holder,
        metrics=metrics,
        max_batch_rows=settings.max_batch_rows,
        limits=settings.limits,
        prediction_log=prediction_log,
    )


def _source(settings: ServeSettings) -> ModelSource:
    if settings.model_dir is not None:
        from ctrain.serving.source import DirectorySource

        return DirectorySource(Path(settings.model_dir))
    from ctrain.registry import Registry
    from ctrain.serving.source import RegistrySource
    from ctrain.storage import make_s3_client

    assert settings.bucket is not None  # the command refuses a registry without one
    registry = Registry(make_s3_client(os.environ), settings.bucket, settings.prefix)
    return RegistrySource(registry, settings.model, settings.version)


def _prediction_log(
    settings: ServeSettings, logged: PredictionLogSettings, metrics: ServingMetrics
) -> PredictionLogger:
    from ctrain.registry.layout import Layout
    from ctrain.serving.predlog import S3Sink, encryption_args
    from ctrain.storage import make_s3_client

    assert settings.bucket is not None  # the command refuses a log without one
    # Short timeouts and few attempts: a flush that waits on dead storage only delays
    # the next flush, and the buffer bound decides what is dropped meanwhile.
    client = make_s3_client(os.environ, max_attempts=2, connect_timeout=2.0, read_timeout=10.0)
    encryption = encryption_args(settings.sse, settings.sse_kms_key_id)
    sink = S3Sink(client, settings.bucket, encryption)
    layout = Layout(settings.bucket, settings.prefix)
    where = f"s3://{settings.bucket}/{layout.predictions_root(settings.model)}"
    log.info(
        "logging %g of requests to %s every %gs (server-side encryption: %s)",
        logged.sample_rate, where, logged.flush_seconds, settings.sse or "None",
    )  # fmt: skip
    return PredictionLogger(logged, sink, layout, pod=settings.pod, metrics=metrics)
