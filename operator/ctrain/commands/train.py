"""`ctrain train`: one training run, the command of a TrainingJob's pod.

The operator runs ``ctrain train --spec-file <file>`` (the spec projected from a pod
annotation: a spec in args would be `$(VAR)`-expanded by the kubelet); people can run the
same thing locally with ``--spec-json`` or ``--spec-file``. The result (or the failure,
with its reason) is written as JSON to ``--termination-log`` for the operator and printed
on stdout; progress goes to stderr as log lines, ``key=value`` text or, with
``--log-format json``, one JSON object per line with the fields of the operator's JSON logs
(``message``, ``timestamp``, ``severity``) plus ``logger``. Exit code 0 on success; a
failure's exit code tells its class (docs/contracts.md): 10 invalid spec, 11 invalid data,
12 training failed (not retried by the Job), 1 anything that may pass on a retry (storage,
unforeseen errors).

Where the registry lives: ``--bucket``/``--prefix`` on the command line win, then the
spec's ``storage``, then ``CTRAIN_BUCKET``/``CTRAIN_PREFIX``, then ``models``/``ctrain``.
S3 endpoint, region and credentials come from the environment (see `ctrain.storage`);
nothing here logs them.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import click

from ctrain.api import Reason, StorageSpec
from ctrain.api.common import DEFAULT_BUCKET, DEFAULT_PREFIX
from ctrain.api.contracts import TrainingFailed, TrainingSucceeded
from ctrain.commands.logsetup import configure_logging
from ctrain.storage import S3Client, make_s3_client

__all__ = ["train"]

DEFAULT_TERMINATION_LOG = Path("/dev/termination-log")

log = logging.getLogger("ctrain.train")


def _client_for(storage: StorageSpec | None) -> S3Client:
    if storage is None:
        return make_s3_client()
    return make_s3_client(
        endpoint_url=storage.endpoint,
        region_name=storage.region,
        addressing_style=storage.addressing_style,
    )


@click.command("train")
@click.option("--spec-json", help="The TrainingJob spec as JSON.")
@click.option(
    "--spec-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding the TrainingJob spec as JSON (or YAML).",
)
@click.option(
    "--termination-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_TERMINATION_LOG,
    show_default=True,
    help="Where to write the JSON result for the operator (the default is only written "
    "when it exists, as in a pod).",
)
@click.option("--bucket", help="Registry bucket; overrides the spec's storage.bucket.")
@click.option("--prefix", help="Registry key prefix; overrides the spec's storage.prefix.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="CTRAIN_LOG_FORMAT",
    show_default=True,
    help="Log lines on stderr: text for people, json for log pipelines [env CTRAIN_LOG_FORMAT].",
)
def train(
    spec_json: str | None,
    spec_file: Path | None,
    termination_log: Path,
    bucket: str | None,
    prefix: str | None,
    log_format: str,
) -> None:
    """Train, evaluate and register one model version from a TrainingJob spec."""
    configure_logging(log_format)
    # The trainer pulls in scikit-learn; keep `ctrain --help` fast.
    from ctrain.trainer import TrainerContext, run
    from ctrain.trainer.errors import EXIT_INVALID_SPEC
    from ctrain.trainer.termination import failure, write

    payload: TrainingSucceeded | TrainingFailed
    if (spec_json is None) == (spec_file is None):
        code = EXIT_INVALID_SPEC
        payload = failure(Reason.INVALID_SPEC, "give one of --spec-json or --spec-file")
    else:
        try:
            raw = spec_json if spec_json is not None else _read_spec_file(spec_file)
        except ValueError as exc:
            code, payload = EXIT_INVALID_SPEC, failure(Reason.INVALID_SPEC, str(exc))
        else:
            context = TrainerContext(
                client_factory=_client_for,
                bucket=bucket,
                prefix=prefix,
                default_bucket=os.environ.get("CTRAIN_BUCKET") or DEFAULT_BUCKET,
                default_prefix=os.environ.get("CTRAIN_PREFIX", DEFAULT_PREFIX),
                training_job={
                    "name": os.environ.get("CTRAIN_TRAININGJOB_NAME", ""),
                    "namespace": os.environ.get("CTRAIN_TRAININGJOB_NAMESPACE", ""),
                    "uid": os.environ.get("CTRAIN_TRAININGJOB_UID", ""),
                },
            )
            code, payload = run(raw, context)

    if termination_log == DEFAULT_TERMINATION_LOG and not termination_log.exists():
        # Outside a pod nobody mounted it: do not create files in /dev; stdout has it.
        log.info("no %s: the result is on stdout only", termination_log)
    else:
        write(termination_log, payload.to_wire())
    click.echo(json.dumps(payload.to_wire(), sort_keys=True))
    click.get_current_context().exit(code)


def _read_spec_file(path: Path | None) -> str | dict[str, Any]:
    """The spec from a JSON file, or a YAML file holding a spec or a whole TrainingJob."""
    assert path is not None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read --spec-file {path}: {exc}") from exc
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"--spec-file {path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"--spec-file {path} must hold a mapping")
        # A whole TrainingJob manifest is accepted too: take its spec.
        spec = data.get("spec") if data.get("kind") == "TrainingJob" else data
        if not isinstance(spec, dict):
            raise ValueError(f"--spec-file {path}: the TrainingJob has no spec")
        return spec
    return text
