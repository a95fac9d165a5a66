"""`-o table|json|yaml` for the read commands of `ctrain models`.

Machine formats print one document and nothing else (no comment lines), so
``ctrain models show iris 3 -o json | jq .metrics`` works; the table is for people.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click
import yaml

__all__ = ["FORMATS", "emit", "output_option", "table"]

FORMATS = ("table", "json", "yaml")
F = TypeVar("F", bound=Callable[..., Any])


def output_option(function: F) -> F:
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format: a table for people, or one JSON or YAML document.",
    )(function)


def emit(output: str, document: Any, render_table: Callable[[], str]) -> None:
    """Print ``document`` as JSON or YAML, or the table ``render_table`` makes."""
    if output == "json":
        click.echo(json.dumps(document, indent=2, sort_keys=True))
    elif output == "yaml":
        click.echo(yaml.safe_dump(document, sort_keys=True, default_flow_style=False), nl=False)
    else:
        click.echo(render_table())


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns two spaces apart, like kubectl's."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True))
             for row in [header, *rows]]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)
