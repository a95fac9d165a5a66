"""`ctrain serve`: the role of a serving pod.

Turns the options into `ctrain.serving.settings.ServeSettings` and runs the app built
from them on uvicorn (httptools, uvloop): the model source (the S3 registry, or
`--model-dir` for a local directory with the same layout), the model holder, the ASGI
app, and the prediction log. The process starts listening at once and loads the model
in the background, so readiness is 503 until the model is in memory, and a model that
cannot load keeps the pod alive and not ready.

Every bound on what a client may cost is an option here (`ctrain.serving.limits` says
what each does when exceeded; docs/install.md lists them).
"""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Any

import click

from ctrain.serving.limits import DEFAULT_LIMITS
from ctrain.serving.predlog import SSE_TYPES, PredictionLogSettings

__all__ = ["serve"]

log = logging.getLogger("ctrain.serve")
_LOG_DEFAULTS = PredictionLogSettings()


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
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    envvar="CTRAIN_SERVE_WORKERS",
    show_default=True,
    help="Processes sharing the port, each with the model loaded; /metrics and /drift "
    "describe them all [env CTRAIN_SERVE_WORKERS].",
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
@_limit("--keep-alive-timeout", "Seconds an idle connection stays open between requests.", float)
@click.option(
    "--prediction-log/--no-prediction-log",
    default=False,
    show_default=True,
    help="Write sampled requests and their predictions to <prefix>/<model>/predictions/ in "
    "the bucket (docs/contracts.md).",
)
@click.option(
    "--prediction-log-sample-rate",
    type=click.FloatRange(0, 1),
    default=_LOG_DEFAULTS.sample_rate,
    show_default=True,
    help="Share of requests logged (all rows of a request, or none).",
)
@click.option(
    "--prediction-log-flush-seconds",
    type=click.FloatRange(min=0, min_open=True),
    default=_LOG_DEFAULTS.flush_seconds,
    show_default=True,
    help="Write the buffered rows this often (and on shutdown).",
)
@click.option(
    "--prediction-log-exclude-columns",
    multiple=True,
    help="Features never written to the log (comma-separated, repeatable).",
)
@click.option(
    "--prediction-log-buffer-rows",
    type=click.IntRange(min=1),
    default=_LOG_DEFAULTS.max_buffer_rows,
    show_default=True,
    help="Rows held while storage is slow or down; more are dropped and counted.",
)
@click.option(
    "--pod-name",
    envvar="POD_NAME",
    default=socket.gethostname,
    show_default="$POD_NAME or the host name",
    help="Names the prediction log objects.",
)
@click.option(
    "--sse",
    type=click.Choice(SSE_TYPES),
    envvar="CTRAIN_S3_SSE",
    default="None",
    show_default=True,
    help="Server-side encryption of every object the server writes [env CTRAIN_S3_SSE].",
)
@click.option(
    "--sse-kms-key-id",
    envvar="CTRAIN_S3_SSE_KMS_KEY_ID",
    help="KMS key for --sse aws:kms (default: the bucket's) [env CTRAIN_S3_SSE_KMS_KEY_ID].",
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
def serve(**options: Any) -> None:
    """Serve one model over the Open Inference Protocol v2 (HTTP)."""
    import uvicorn

    from ctrain.serving.logs import configure_logging
    from ctrain.serving.server import uvicorn_config
    from ctrain.serving.settings import build_app

    settings = _settings(options)
    configure_logging(settings.log_level, settings.log_format)
    if settings.workers > 1:
        from ctrain.serving.workers import run_workers

        run_workers(settings)  # each worker builds its own app
        return
    app = build_app(settings)
    log.info("listening on %s:%d", settings.host, settings.port)
    config = uvicorn_config(
        app,
        host=settings.host,
        port=settings.port,
        limits=settings.limits,
        access_log=settings.access_log,
    )
    # On SIGTERM uvicorn stops accepting, finishes in-flight requests, runs the app's
    # shutdown (the prediction log's last flush), then re-raises the signal: the exit
    # status is the signal's, as expected.
    uvicorn.Server(config).run()


def _settings(options: dict[str, Any]) -> Any:
    """ServeSettings from the options, or a UsageError saying what is wrong."""
    from ctrain.serving.limits import Limits
    from ctrain.serving.predlog import encryption_args
    from ctrain.serving.settings import ServeSettings

    model, version = options["model_name"], options["version"]
    model_dir: Path | None = options["model_dir"]
    bucket = options["bucket"]
    if model_dir is not None:
        model = model or _name_in(model_dir)
        version = version or "1"  # only if metadata.json has no version
    else:
        if not model:
            raise click.UsageError("--model is required (or --model-dir)")
        if not bucket:
            raise click.UsageError("--bucket (or CTRAIN_BUCKET) is required to use the registry")
        version = version or "champion"
    limits_fields = {f: options[f] for f in Limits.__dataclass_fields__}
    logged = None
    if options["prediction_log"]:
        if not bucket:
            raise click.UsageError("--prediction-log needs --bucket (or CTRAIN_BUCKET)")
        buffer_rows = options["prediction_log_buffer_rows"]
        excluded = [c.strip() for item in options["prediction_log_exclude_columns"]
                    for c in item.split(",") if c.strip()]  # fmt: skip
        logged = PredictionLogSettings(
            sample_rate=options["prediction_log_sample_rate"],
            flush_seconds=options["prediction_log_flush_seconds"],
            exclude_columns=tuple(excluded),
            max_buffer_rows=buffer_rows,
            # Flush early at half the buffer: rows keep coming while an object is written.
            max_object_rows=max(1, min(_LOG_DEFAULTS.max_object_rows, buffer_rows // 2)),
        )
    sse = None if options["sse"] == "None" else options["sse"]
    try:
        encryption_args(sse, options["sse_kms_key_id"])
        return ServeSettings(
            model=model, version=version,
            model_dir=str(model_dir) if model_dir is not None else None,
            bucket=bucket, prefix=options["prefix"],
            max_batch_rows=options["max_batch_rows"], drift_window=options["drift_window"],
            limits=Limits(**limits_fields), prediction_log=logged, pod=options["pod_name"],
            sse=sse, sse_kms_key_id=options["sse_kms_key_id"],
            host=options["host"], port=options["port"], workers=options["workers"],
            access_log=options["access_log"],
            log_level=options["log_level"], log_format=options["log_format"],
        )  # fmt: skip
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def _name_in(model_dir: Path) -> str:
    """The model name recorded in metadata.json, else the directory's name."""
    try:
        name = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        name = None
    return str(name) if name else model_dir.resolve().name
