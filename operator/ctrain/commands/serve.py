"""`ctrain serve`: the role of a serving pod.

Wires the pieces of `ctrain.serving` together and runs them on uvicorn (httptools,
uvloop): the model source (the S3 registry, or `--model-dir` for a local directory with
the same layout), the model holder, and the ASGI app. The process starts listening at
once and loads the model in the background, so readiness is 503 until the model is in
memory, and a model that cannot load keeps the pod alive and not ready.

Every bound on what a client may cost is an option here (`ctrain.serving.limits` says
what each does when exceeded; docs/install.md lists them).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ctrain.serving.limits import DEFAULT_LIMITS

if TYPE_CHECKING:
    from ctrain.serving.source import RegistrySource

__all__ = ["serve"]

log = logging.getLogger("ctrain.serve")


def _limit(flag: str, help: str, kind: type = int) -> Any:
    """An option for one field of `Limits`, its default taken from there."""
    name = flag.lstrip("-").replace("-", "_")
    default = getattr(DEFAULT_LIMITS, name)
    kind_type = click.FloatRange(min=0, min_open=True) if kind is float else click.IntRange(min=1)
    return click.option(flag, name, type=kind_type, default=default, show_default=True, help=help)


@click.command()
@click.option("--model", "model_name", help="Model name in the registry (and in the v2 URLs).")
@click.option(
    "--version",
    "version",
    help="champion, latest, or an explicit version.  [default: champion; with --model-dir: "
    "the version in metadata.json]",
)
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Serve model.skops + metadata.json + reference.json from this directory instead "
    "of the registry.",
)
@click.option(
    "--host",
    envvar="POD_IP",
    default="0.0.0.0",
    show_default="$POD_IP or 0.0.0.0",
    help="Address to listen on.",
)
@click.option("--port", type=int, default=8080, show_default=True, help="Port to listen on.")
@click.option("--bucket", envvar="CTRAIN_BUCKET", help="Registry bucket [env CTRAIN_BUCKET].")
@click.option(
    "--prefix", envvar="CTRAIN_PREFIX", default="", help="Key prefix [env CTRAIN_PREFIX]."
)
@click.option(
    "--max-batch-rows",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Largest number of rows coalesced into one predict call.",
)
@click.option(
    "--drift-window",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Served rows kept for drift statistics.",
)
@_limit("--max-body-bytes", "Largest request body in bytes (413 above).")
@_limit("--max-request-rows", "Most rows in one inference request (413 above).")
@_limit("--max-string-length", "Longest BYTES value or request id, in characters (400 above).")
@_limit("--max-concurrency", "Inference requests in progress at once (503 + Retry-After above).")
@_limit(
    "--max-inflight-bytes",
    "Request bodies held at once, in bytes: bounds memory (503 + Retry-After above).",
)
@_limit("--max-queue-rows", "Rows waiting for the micro-batcher (503 + Retry-After above).")
@_limit("--max-header-bytes", "Request line and headers, in bytes (431 above).")
@_limit(
    "--header-timeout",
    "Seconds from a connection's (or request's) first byte to the end of its headers (408).",
    float,
)
@_limit(
    "--body-timeout", "Seconds from the end of the headers to the end of the body (408).", float
)
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="CTRAIN_LOG_FORMAT",
    show_default=True,
    help="text, or one JSON object per line [env CTRAIN_LOG_FORMAT].",
)
def serve(
    model_name: str | None,
    version: str | None,
    model_dir: Path | None,
    host: str,
    port: int,
    bucket: str | None,
    prefix: str,
    max_batch_rows: int,
    drift_window: int,
    access_log: bool,
    log_level: str,
    log_format: str,
    **limit_options: Any,
) -> None:
    """Serve one model over the Open Inference Protocol v2 (HTTP)."""
    import prometheus_client
    import uvicorn

    from ctrain.serving import ModelHolder, ServingApp, ServingMetrics
    from ctrain.serving.limits import Limits
    from ctrain.serving.logs import configure_logging
    from ctrain.serving.server import uvicorn_config
    from ctrain.serving.source import ModelSource

    configure_logging(log_level, log_format)
    try:
        limits = Limits(**limit_options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    prometheus_client.disable_created_metrics()  # half the series, no information
    source: ModelSource
    if model_dir is not None:
        from ctrain.serving.source import DirectorySource

        model_name = model_name or _name_in(model_dir)
        source = DirectorySource(model_dir)
        version = version or "1"  # only if metadata.json has no version
    else:
        if not model_name:
            raise click.UsageError("--model is required (or --model-dir)")
        if not bucket:
            raise click.UsageError("--bucket (or CTRAIN_BUCKET) is required to use the registry")
        version = version or "champion"
        source = _registry_source(model_name, version, bucket, prefix)
    log.info("serving model %s from %s on %s:%d", model_name, source.description, host, port)
    metrics = ServingMetrics(model_name)
    holder = ModelHolder(
        model_name,
        source,
        version=version,
        metrics=metrics,
        drift_window=drift_window,
        freeze_gc=True,
    )
    app = ServingApp(holder, metrics=metrics, max_batch_rows=max_batch_rows, limits=limits)
    config = uvicorn_config(app, host=host, port=port, limits=limits, access_log=access_log)
    # On SIGTERM uvicorn stops accepting, finishes in-flight requests, runs the app's
    # shutdown, then re-raises the signal: the exit status is the signal's, as expected.
    uvicorn.Server(config).run()


def _name_in(model_dir: Path) -> str:
    """The model name recorded in metadata.json, else the directory's name."""
    try:
        name = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        name = None
    return str(name) if name else model_dir.resolve().name


def _registry_source(model: str, version: str, bucket: str, prefix: str) -> RegistrySource:
    from ctrain.registry import Registry
    from ctrain.serving.source import RegistrySource
    from ctrain.storage import make_s3_client

    registry = Registry(make_s3_client(os.environ), bucket, prefix)
    return RegistrySource(registry, model, version)
