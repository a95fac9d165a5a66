"""`ctrain dev image` and `ctrain dev engine`: the container commands of the dev tooling."""

import shlex
from pathlib import Path

import click

from ctrain_dev.clierrors import one_line_errors
from ctrain_dev.containers import engine as engine_module
from ctrain_dev.containers import image as image_module

ROOT_OPTION = click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The checkout holding the Dockerfile.",
)


@click.command("image")
@ROOT_OPTION
@click.option("--tag", default=image_module.DEFAULT_TAG, show_default=True)
@click.option(
    "--base",
    default=None,
    help=f"Base image (default {image_module.DEFAULT_BASE}, or a locally made equivalent "
    "where it cannot be pulled).",
)
@one_line_errors
def image(root: Path, tag: str, base: str | None) -> None:
    """Build the ctrain image from the Dockerfile (starting a Docker engine if needed)."""
    image_module.build(root.resolve(), tag, base)


@click.group("engine")
def engine() -> None:
    """The project's own Docker engine (used where no other Docker answers)."""


@engine.command("up")
@one_line_errors
def engine_up() -> None:
    """Start it (installing Debian's docker.io first if needed)."""
    found = engine_module.find()
    where = "the project's engine" if found.owned else "your Docker engine"
    click.echo(f"{where} answers ({found.env.get('DOCKER_HOST', 'default socket')})")


@engine.command("down")
def engine_down() -> None:
    """Stop the project's engine by its pid (its containers stop with it)."""
    engine_module.down()


@engine.command("env")
@one_line_errors
def engine_env() -> None:
    """Print `export DOCKER_HOST=...` for the engine `make image` uses."""
    found = engine_module.find(start=False)
    if "DOCKER_HOST" in found.env:
        click.echo(f"export DOCKER_HOST={shlex.quote(found.env['DOCKER_HOST'])}")


@click.command("node-image")
@one_line_errors
def node_image() -> None:
    """Build the kind node image on this machine (where kindest/node cannot be pulled)."""
    from ctrain_dev.containers import nodeimage

    click.echo(nodeimage.node_image(engine_module.find()))
