"""`ctrain operator`: run the operator (kopf) in this process."""

import logging

import click

__all__ = ["operator"]


@click.command()
@click.option(
    "--namespace",
    "namespaces",
    multiple=True,
    help="Watch only these namespaces (repeatable; default: the whole cluster, or "
    "$CTRAIN_WATCH_NAMESPACES).",
)
@click.option(
    "--liveness-port",
    type=int,
    default=8081,
    show_default=True,
    help="Port of the /healthz endpoint (0 disables it).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    envvar="CTRAIN_LOG_FORMAT",
    show_default=True,
)
@click.option(
    "--metrics-port",
    type=int,
    default=0,
    envvar="CTRAIN_METRICS_PORT",
    show_default=True,
    help="Port of the Prometheus /metrics endpoint (0 disables it) [env CTRAIN_METRICS_PORT].",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def operator(
    namespaces: tuple[str, ...],
    liveness_port: int,
    log_format: str,
    metrics_port: int,
    verbose: bool,
) -> None:
    """Run the ctrain operator: reconcile TrainingJobs, ModelDeployments, ContinuousTrainings."""
    import os

    from ctrain.controller.main import run

    if namespaces:
        os.environ["CTRAIN_WATCH_NAMESPACES"] = ",".join(namespaces)
    os.environ["CTRAIN_METRICS_PORT"] = str(metrics_port)
    run(
        namespaces=[n for n in os.environ.get("CTRAIN_WATCH_NAMESPACES", "").split(",") if n],
        liveness_port=liveness_port,
        json_logs=log_format == "json",
        level=logging.DEBUG if verbose else logging.INFO,
    )
