"""`ctrain models`: look at and move models in the registry by hand.

``list``, ``show`` and ``history`` read (``-o table|json|yaml``; the machine formats print
one document and nothing else); ``report`` draws a model's history into one HTML page;
``promote`` and ``rollback`` move the champion (every ModelDeployment with ``version:
champion`` then rolls the new champion out) and record the reason in
``aliases/champion.log``, which ``history`` prints with who moved it. ``rollback`` without
``--to`` returns to the latest earlier champion that is not rejected. ``reject`` marks a
version rejected (``champion`` and ``latest`` never resolve to it); ``promote`` of a
rejected version un-rejects it, and the log line says so.

The registry location comes from ``--bucket``/``--prefix`` (env ``CTRAIN_BUCKET``,
``CTRAIN_PREFIX``; default ``models``/``ctrain``) and S3 settings from the environment,
as for every ctrain role. Tests can pass a ready S3 client as ``obj={"s3_client": ...}``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click

from ctrain.api.common import DEFAULT_BUCKET, DEFAULT_PREFIX
from ctrain.commands.output import emit, output_option, table
from ctrain.registry import Registry, RegistryError
from ctrain.report.history import ModelHistory, load_history, rejection
from ctrain.storage import SSE_ENV, SSE_KMS_KEY_ENV, encryption_args, make_s3_client

__all__ = ["models"]

F = TypeVar("F", bound=Callable[..., Any])

BY = "ctrain models"  # who moved the champion, in the log


def _registry_options(function: F) -> F:
    function = click.option(
        "--prefix",
        envvar="CTRAIN_PREFIX",
        default=DEFAULT_PREFIX,
        show_default=True,
        help="Key prefix of the registry in the bucket (env CTRAIN_PREFIX).",
    )(function)
    function = click.option(
        "--bucket",
        envvar="CTRAIN_BUCKET",
        default=DEFAULT_BUCKET,
        show_default=True,
        help="Bucket of the model registry (env CTRAIN_BUCKET).",
    )(function)
    return function


def _registry(bucket: str, prefix: str) -> Registry:
    ctx = click.get_current_context()
    obj = ctx.find_root().obj
    client = obj.get("s3_client") if isinstance(obj, dict) else None
    try:
        # A promotion writes the champion log: encrypted as the trainer's writes are.
        encryption = encryption_args(
            os.environ.get(SSE_ENV) or "None", os.environ.get(SSE_KMS_KEY_ENV) or None
        )
        return Registry(client or make_s3_client(), bucket, prefix, encryption=encryption)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


@contextlib.contextmanager
def _registry_errors() -> Iterator[None]:
    """Turn registry errors into clean CLI errors (message, exit code 1)."""
    try:
        yield
    except RegistryError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("models")
def models() -> None:
    """List, inspect, report on, promote, reject and roll back model versions."""


@models.command("list")
@click.argument("model")
@click.option(
    "--all-metrics",
    is_flag=True,
    help="A column for every metric (default: the key metric and two more).",
)
@output_option
@_registry_options
def list_versions(model: str, all_metrics: bool, output: str, bucket: str, prefix: str) -> None:
    """List the versions of MODEL with their metrics; * marks the champion."""
    registry = _registry(bucket, prefix)
    with _registry_errors():
        history = load_history(registry, model)
    if output == "table" and not history.versions:
        click.echo(f"no versions of {model} in s3://{registry.bucket}/{registry.prefix}")
        return
    document = {
        "model": model,
        "champion": history.champion,
        "versions": [record.to_json() for record in history.versions],
    }
    emit(output, document, lambda: _versions_table(history, all_metrics))


def _versions_table(history: ModelHistory, all_metrics: bool) -> str:
    names = history.metric_names()
    if not all_metrics:
        names = names[:3]
    with_rejected = any(record.rejected for record in history.versions)
    header = ["VERSION", "CREATED", *(name.upper() for name in names), "BLESSED"]
    header += ["REJECTED"] if with_rejected else []
    rows = []
    for record in history.versions:
        row = [record.version, record.created_at or ""]
        row += [_number(record.metrics.get(name)) for name in names]
        row += ["yes" if record.blessed else "no"]
        row += ["yes" if record.rejected else "no"] if with_rejected else []
        rows.append([*row, "*" if record.champion else ""])
    return table([*header, "CHAMPION"], rows)


@models.command("show")
@click.argument("model")
@click.argument("version")
@output_option
@_registry_options
def show(model: str, version: str, output: str, bucket: str, prefix: str) -> None:
    """Show VERSION of MODEL (a number, champion or latest): metadata.json and its standing.

    ``-o json`` and ``-o yaml`` print metadata.json with ``artifactUri``, ``champion`` and
    ``rejected`` added.
    """
    registry = _registry(bucket, prefix)
    with _registry_errors():
        resolved = registry.resolve(model, version)
        metadata = registry.metadata(model, resolved).to_wire()  # as stored, unknown fields too
        champion = registry.champion(model)
        rejected, reason = rejection(registry, model, resolved, metadata)
    document = {
        **metadata,
        "artifactUri": registry.artifact_uri(model, resolved),
        "champion": resolved == champion,
        "rejected": rejected,
    }
    if rejected:
        document["rejectedReason"] = reason
    emit(output, document, lambda: _show_table(model, resolved, document))


def _show_table(model: str, version: str, doc: dict[str, Any]) -> str:
    def part(key: str) -> dict[str, Any]:
        value = doc.get(key)
        return value if isinstance(value, dict) else {}

    dataset, job = part("dataset"), part("trainingJob")
    rejected = "yes" if doc["rejected"] else "no"
    if doc.get("rejectedReason"):
        rejected += f" ({doc['rejectedReason']})"
    rows = [
        ["MODEL", model],
        ["VERSION", version + (" (champion)" if doc["champion"] else "")],
        ["CREATED", str(doc.get("createdAt", ""))],
        ["ARTIFACTS", doc["artifactUri"]],
        ["BLESSED", "yes" if doc.get("blessed") else "no"],
        ["REJECTED", rejected],
        ["ESTIMATOR", str(part("estimator").get("type", ""))],
        ["DATASET", " ".join(str(dataset[k]) for k in ("uri", "rows") if dataset.get(k))],
        ["TRAININGJOB", "/".join(str(job[k]) for k in ("namespace", "name") if job.get(k))],
        ["METRICS", ""],
    ]
    rows += [[f"  {name}", _number(value)] for name, value in sorted(part("metrics").items())]
    return table(rows[0], rows[1:])


@models.command("promote")
@click.argument("model")
@click.argument("version")
@click.option("--reason", required=True, help="Why; recorded in the champion log.")
@_registry_options
def promote(model: str, version: str, reason: str, bucket: str, prefix: str) -> None:
    """Make VERSION of MODEL the champion."""
    registry = _registry(bucket, prefix)
    with _registry_errors():
        resolved = registry.resolve(model, version)
        change = registry.set_champion(model, resolved, reason, by=BY)
    if change is None:
        click.echo(f"{model}: v{resolved} already is the champion")
        return
    unrejected = " (un-rejected)" if change.unrejected else ""
    click.echo(
        f"{model}: champion {_from(change.from_version)} -> v{change.to_version}{unrejected}"
    )


@models.command("reject")
@click.argument("model")
@click.argument("version")
@click.option("--reason", required=True, help="Why; recorded with the rejection.")
@_registry_options
def reject(model: str, version: str, reason: str, bucket: str, prefix: str) -> None:
    """Mark VERSION of MODEL rejected: champion and latest never resolve to it again.

    A rejected champion stays in the alias until it is moved (``rollback``); until then
    ``champion`` resolves to the latest earlier champion that is not rejected. ``promote``
    un-rejects.
    """
    registry = _registry(bucket, prefix)
    with _registry_errors():
        resolved = registry.resolve(model, version)
        mark = registry.reject(model, resolved, reason=reason, by=BY)
    click.echo(f"{model}: v{resolved} rejected ({mark.reason})")


@models.command("rollback")
@click.argument("model")
@click.option("--to", "to", help="Version to return to (default: the previous champion).")
@click.option("--reason", required=True, help="Why; recorded in the champion log.")
@_registry_options
def rollback(model: str, to: str | None, reason: str, bucket: str, prefix: str) -> None:
    """Move the champion of MODEL back to the previous champion (or --to VERSION)."""
    registry = _registry(bucket, prefix)
    with _registry_errors():
        target = None if to is None else registry.resolve(model, to)
        change = registry.rollback(model, reason, to=target, by=BY)
    click.echo(
        f"{model}: rolled back champion {_from(change.from_version)} -> v{change.to_version}"
    )


@models.command("history")
@click.argument("model")
@output_option
@_registry_options
def history(model: str, output: str, bucket: str, prefix: str) -> None:
    """Print every move of the champion alias of MODEL, oldest first."""
    registry = _registry(bucket, prefix)
    with _registry_errors():
        changes = registry.champion_history(model)
    if output == "table" and not changes:
        click.echo(f"{model} has never had a champion")
        return
    document = {"model": model, "changes": [change.to_json() for change in changes]}
    rows = [
        [c.time, _from(c.from_version), f"v{c.to_version}", c.action or "-", c.by or "-",
         c.reason]
        for c in changes
    ]  # fmt: skip
    header = ["TIME", "FROM", "TO", "ACTION", "BY", "REASON"]
    emit(output, document, lambda: table(header, rows))


@models.command("report")
@click.argument("model")
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the HTML page (default: MODEL-report.html).",
)
@click.option(
    "--deployment",
    "deployments",
    multiple=True,
    metavar="NAMESPACE/NAME",
    help="Also plot the drift history of this ModelDeployment (repeatable).",
)
@_registry_options
def report(
    model: str, output: Path | None, deployments: tuple[str, ...], bucket: str, prefix: str
) -> None:
    """Write one self-contained HTML page with plots of MODEL's history.

    The key metric of every version over time (blessed, unblessed and rejected told apart,
    champion changes marked), the versions, and the drift of each --deployment over time.
    Needs the `report` extra (plotly): pip install 'ctrain[report]'.
    """
    try:
        from ctrain.report.html import render_report
    except ImportError as exc:
        raise click.ClickException(
            f"the report needs plotly ({exc.name} is missing): pip install 'ctrain[report]'"
        ) from exc
    targets = [_deployment(value) for value in deployments]
    registry = _registry(bucket, prefix)
    with _registry_errors():
        history = load_history(registry, model)
        monitoring = {
            f"{namespace}/{name}": registry.monitoring_history(model, namespace, name)
            for namespace, name in targets
        }
    if not history.versions:
        raise click.ClickException(
            f"no versions of {model} in s3://{registry.bucket}/{registry.prefix}"
        )
    path = output or Path(f"{model}-report.html")
    path.write_text(render_report(history, monitoring), encoding="utf-8")
    click.echo(f"{model}: report of {len(history.versions)} versions written to {path}")


def _deployment(value: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name:
        raise click.BadParameter(f"{value!r}: use NAMESPACE/NAME", param_hint="--deployment")
    return namespace, name


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _from(version: str | None) -> str:
    return "(none)" if version is None else f"v{version}"
