"""Start kopf with ctrain's handlers: standalone (one replica), cluster-wide or namespaced."""

import logging

import kopf

__all__ = ["run"]


def run(*, namespaces: list[str], liveness_port: int, json_logs: bool, level: int) -> None:
    import ctrain.controller.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(
        verbose=level <= logging.DEBUG,
        log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.PLAIN,
        log_prefix=False,
    )
    logging.getLogger("ctrain").setLevel(level)
    if level > logging.DEBUG:
        # kopf reports every handled event ("Handler ... succeeded") at INFO: a line per
        # watch event is noise at scale and costs the operator more than the handler.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    endpoint = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=endpoint,
    )
