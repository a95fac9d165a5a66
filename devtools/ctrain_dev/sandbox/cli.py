"""`ctrain dev`: the local sandbox (control plane, a real node, S3, operator) on this machine."""

import json
import os
import shlex
import sys
from pathlib import Path

import click

from ctrain_dev.clierrors import one_line_errors
from ctrain_dev.sandbox import sandbox

_DIR = click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Sandbox directory (default: $CTRAIN_SANDBOX_DIR or ~/.local/state/ctrain/sandbox).",
)


@click.group()
def dev() -> None:
    """Run a local Kubernetes sandbox for the demo and the tests."""


@dev.command()
@_DIR
@click.option("--no-operator", is_flag=True, help="Do not start the ctrain operator.")
@one_line_errors
def up(directory: Path | None, no_operator: bool) -> None:
    """Start the sandbox, or do nothing if it is already running."""
    state = sandbox.up(directory, with_operator=not no_operator)
    click.echo(f"""
The sandbox is running. To use it from this shell:

  eval "$(ctrain dev env{f" --dir {state.directory}" if directory else ""})"
  kubectl get nodes
  aws s3 ls        # or boto3: the AWS_* variables point at the sandbox's S3

Stop it with `ctrain dev down`.""")


@dev.command()
@one_line_errors
def binaries() -> None:
    """Build (first time only) or find the Kubernetes, etcd and helm binaries; print them."""
    from ctrain_dev.sandbox.binaries import ensure_binaries

    for name, path in sorted(ensure_binaries().paths.items()):
        click.echo(f"{name:<24} {path}")


@dev.command()
@_DIR
def down(directory: Path | None) -> None:
    """Stop every process the sandbox started and remove its state."""
    sandbox.down(directory)


@dev.command()
@_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(directory: Path | None, as_json: bool) -> None:
    """Show what the sandbox runs."""
    if as_json:
        state = sandbox.State.load(directory or sandbox.default_dir())
        click.echo(json.dumps(None if state is None else state.__dict__, indent=2))
        return
    click.echo("\n".join(sandbox.status_lines(directory)))


@dev.command()
@_DIR
def env(directory: Path | None) -> None:
    """Print shell exports for KUBECONFIG, PATH (kubectl, helm) and the S3 endpoint."""
    state = sandbox.State.load(directory or sandbox.default_dir())
    if state is None:
        raise click.ClickException("no sandbox; start one with `ctrain dev up`")
    variables = state.env()
    path_entries = [*state.bin_dirs, os.path.dirname(sys.executable)]
    variables["PATH"] = ":".join(path_entries) + ":$PATH"
    for name, value in variables.items():
        quoted = shlex.quote(value) if name != "PATH" else f'"{value}"'
        click.echo(f"export {name}={quoted}")


@dev.command()
@_DIR
@click.argument("pod")
@click.option("-n", "--namespace", default="default", show_default=True)
@click.option("-c", "--container", default=None, help="Container (default: the first).")
@click.option("-p", "--previous", is_flag=True, help="The previous run of a restarted container.")
def logs(
    directory: Path | None, pod: str, namespace: str, container: str | None, previous: bool
) -> None:
    """Print a pod's container log (`kubectl logs`: the node's kubelet serves it)."""
    from ctrain_dev.sandbox.operator import kubectl

    state = sandbox.State.load(directory or sandbox.default_dir())
    if state is None:
        raise click.ClickException("no sandbox; start one with `ctrain dev up`")
    args = ["logs", pod, "-n", namespace]
    args += ["-c", container] if container else []
    args += ["--previous"] if previous else []
    try:
        click.echo(kubectl(state, *args), nl=False)
    except RuntimeError as error:
        raise click.ClickException(str(error)) from None


def _add_container_commands() -> None:
    from ctrain_dev.containers import cli as containers

    dev.add_command(containers.image)
    dev.add_command(containers.engine)
    dev.add_command(containers.node_image)


_add_container_commands()
