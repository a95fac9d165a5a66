"""`ctrain evaluate-live`: one live-performance check, the body of the pod the operator runs.

The operator never reads prediction logs or labels itself (that is data work, and its
memory must not grow with traffic); it runs this command in a pod of the ctrain image
every `monitoring.performance.intervalSeconds` and reads the result from the pod's
termination message (`PerformanceMeasured` / `PerformanceFailed`, docs/contracts.md).
Credentials come from the environment (the storage Secret), never from arguments.

Exit codes: 0 measured; 10 the request cannot be measured as asked (a metric that does
not fit the model's task, probabilities the log lacks); 1 anything else (storage).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from ctrain.api import METRICS, Metric, Reason
from ctrain.api.common import DEFAULT_BUCKET, DEFAULT_PREFIX
from ctrain.api.contracts import PerformanceFailed, PerformanceMeasured
from ctrain.commands.logsetup import configure_logging
from ctrain.storage import SSE_TYPES, encryption_args, make_s3_client

__all__ = ["evaluate_live"]

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")
EXIT_INVALID = 10

log = logging.getLogger("ctrain.evaluate_live")


@click.command("evaluate-live")
@click.option("--model", required=True, help="Registry name of the model.")
@click.option(
    "--metric",
    type=click.Choice(sorted(METRICS)),
    help="The metric to judge by (default: accuracy or r2, by the model's task).",
)
@click.option(
    "--window-seconds",
    type=click.IntRange(min=1),
    default=86400,
    show_default=True,
    help="Seconds of logged predictions (by request time) read, up to now.",
)
@click.option(
    "--max-rows",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Labelled rows kept at most (the newest): bounds the pod's memory.",
)
@click.option(
    "--history-limit",
    type=click.IntRange(min=1),
    default=2016,
    show_default=True,
    help="Checks kept in each version's performance.json (the oldest are dropped).",
)
@click.option("--bucket", envvar="CTRAIN_BUCKET", help="Registry bucket [env CTRAIN_BUCKET].")
@click.option("--prefix", envvar="CTRAIN_PREFIX", help="Registry key prefix [env CTRAIN_PREFIX].")
@click.option(
    "--sse",
    type=click.Choice(SSE_TYPES),
    envvar="CTRAIN_S3_SSE",
    default="None",
    show_default=True,
    help="Server-side encryption of performance.json [env CTRAIN_S3_SSE].",
)
@click.option(
    "--sse-kms-key-id",
    envvar="CTRAIN_S3_SSE_KMS_KEY_ID",
    help="KMS key for --sse aws:kms (default: the bucket's) [env CTRAIN_S3_SSE_KMS_KEY_ID].",
)
@click.option(
    "--termination-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_TERMINATION_LOG,
    show_default=True,
    help="Where to write the JSON result for the operator (the default is only written "
    "when it exists, as in a pod).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="CTRAIN_LOG_FORMAT",
    show_default=True,
    help="Log lines on stderr: text for people, json for log pipelines [env CTRAIN_LOG_FORMAT].",
)
def evaluate_live(
    model: str,
    metric: str | None,
    window_seconds: int,
    max_rows: int,
    history_limit: int,
    bucket: str | None,
    prefix: str | None,
    sse: str,
    sse_kms_key_id: str | None,
    termination_log: Path,
    log_format: str,
) -> None:
    """Measure each served version of MODEL on its labelled predictions of the window."""
    configure_logging(log_format)
    # pandas and scikit-learn: keep `ctrain --help` fast.
    from ctrain.registry import Layout
    from ctrain.trainer.errors import TrainerError
    from ctrain.trainer.live import LiveRequest
    from ctrain.trainer.live import evaluate_live as measure
    from ctrain.trainer.termination import write

    payload: PerformanceMeasured | PerformanceFailed
    code = 0
    try:
        encryption = encryption_args(None if sse == "None" else sse, sse_kms_key_id)
        layout = Layout(bucket or DEFAULT_BUCKET, DEFAULT_PREFIX if prefix is None else prefix)
        request = LiveRequest(
            model=model,
            metric=None if metric is None else Metric(metric),
            window_seconds=window_seconds,
            max_rows=max_rows,
            history_limit=history_limit,
        )
        payload = measure(request, make_s3_client(), layout, encryption=encryption)
    except ValueError as exc:  # inconsistent options, an invalid model name
        code = EXIT_INVALID
        payload = PerformanceFailed(reason=Reason.INVALID_SPEC.value, message=str(exc))
    except TrainerError as exc:
        code = EXIT_INVALID if exc.reason == Reason.INVALID_SPEC else 1
        payload = PerformanceFailed(reason=exc.reason.value, message=exc.message)
    if isinstance(payload, PerformanceFailed):
        log.error("live performance of %s not measured: %s", model, payload.message)
    if termination_log == DEFAULT_TERMINATION_LOG and not termination_log.exists():
        log.info("no %s: the result is on stdout only", termination_log)
    else:
        write(termination_log, payload.to_wire())
    click.echo(json.dumps(payload.to_wire(), sort_keys=True))
    click.get_current_context().exit(code)
