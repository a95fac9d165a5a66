"""`ctrain models`: look at and move models in the registry by hand.

``list`` and ``show`` read; ``promote`` and ``rollback`` move the champion alias (every
ModelDeployment with ``version: champion`` then rolls the new champion out) and record
the reason in ``aliases/champion.log``, which ``history`` prints. ``rollback`` without
``--to`` returns to the champion the current one replaced.

The registry location comes from ``--bucket``/``--prefix`` (env ``CTRAIN_BUCKET``,
``CTRAIN_PREFIX``; default ``models``/``ctrain``) and S3 settings from the environment,
as for every ctrain role. Tests can pass a ready S3 client as ``obj={"s3_client": ...}``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click

from ctrain.api.common import DEFAULT_BUCKET, DEFAULT_PREFIX
from ctrain.api.contracts import ModelMetadata
from ctrain.registry import Registry, RegistryError
from ctrain.storage import make_s3_client

__all__ = ["models"]

F = TypeVar("F", bound=Callable[..., Any])


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
        return Registry(client or make_s3_client(), bucket, prefix)
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
    """List, inspect, promote and roll back model versions in the registry."""


@models.command("list")
@click.argument("model")
@_registry_options
def list_versions(model: str, bucket: str, prefix: str) -> None:
    """List the versions of MODEL with their key metrics; * marks the champion."""
    registry = _registry(bucket, prefix)
    with _registry_errors():
        versions = registry.list_versions(model)
        champion = registry.champion(model)
        if not versions:
            click.echo(f"no versions of {model} in s3://{registry.bucket}/{registry.prefix}")
            return
        documents = [registry.metadata(model, version) for version in versions]
    metric_names = _metric_columns(documents)
    header = ["VERSION", "CREATED", *(name.upper() for name in metric_names), "BLESSED", "CHAMPION"]
    rows = []
    for doc in documents:
        rows.append(
            [
                doc.version or "",
                doc.created_at or "",
                *(_number(doc.metrics.get(name)) for name in metric_names),
                "yes" if doc.blessed else "no",
                "*" if doc.version == champion else "",
            ]
        )
    click.echo(_table(header, rows))


@models.command("show")
@click.argument("model")
@click.argument("version")
@_registry_options
def show(model: str, version: str, bucket: str, prefix: str) -> None:
    """Print metadata.json of VERSION of MODEL (a number, champion or latest)."""
    registry = _registry(bucket, prefix)
    with _registry_errors():
        resolved = registry.resolve(model, version)
        document = registry.metadata(model, resolved)
        champion = registry.champion(model)
    click.echo(f"# {model} v{resolved}{' (champion)' if resolved == champion else ''}")
    click.echo(f"# {registry.artifact_uri(model, resolved)}")
    click.echo(json.dumps(document.to_wire(), indent=2, sort_keys=True))


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
        change = registry.set_champion(model, resolved, reason)
    if change is None:
        click.echo(f"{model}: v{resolved} already is the champion")
    else:
        click.echo(f"{model}: champion {_from(change.from_version)} -> v{change.to_version}")


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
        change = registry.rollback(model, reason, to=target)
    click.echo(
        f"{model}: rolled back champion {_from(change.from_version)} -> v{change.to_version}"
    )


@models.command("history")
@click.argument("model")
@_registry_options
def history(model: str, bucket: str, prefix: str) -> None:
    """Print every move of the champion alias of MODEL, oldest first."""
    registry = _registry(bucket, prefix)
    with _registry_errors():
        changes = registry.champion_history(model)
    if not changes:
        click.echo(f"{model} has never had a champion")
        return
    rows = [[c.time, _from(c.from_version), f"v{c.to_version}", c.reason] for c in changes]
    click.echo(_table(["TIME", "FROM", "TO", "REASON"], rows))


def _metric_columns(documents: Sequence[ModelMetadata], limit: int = 3) -> list[str]:
    """The key metric first, then other metrics in first-seen order, at most ``limit``."""
    names: list[str] = []
    for doc in reversed(documents):  # the newest version's key metric leads
        if doc.primary_metric is not None:
            names.append(doc.primary_metric)
            break
    for doc in documents:
        for name in doc.metrics:
            if name not in names:
                names.append(name)
    return names[:limit]


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"


def _from(version: str | None) -> str:
    return "(none)" if version is None else f"v{version}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)
