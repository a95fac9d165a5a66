"""Start kopf with ctrain's handlers: standalone (one replica), cluster-wide or namespaced."""

import logging

import kopf

__all__ = ["quiet_libraries", "run"]

# Loggers that write a line per routine event at INFO: kopf per handled watch event
# ("Handler ... succeeded"), httpx per request (every /metrics scrape of every serving
# pod), aiohttp per /healthz probe. At scale that is noise, and it costs the operator more
# than the work it reports. Their warnings and errors still show.
CHATTY = ("kopf.objects", "httpx", "httpcore", "aiohttp.access")


def quiet_libraries(level: int) -> None:
    """Raise the chatty libraries' loggers to WARNING unless debug logging was asked for."""
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.WARNING if level > logging.DEBUG else level)


def run(*, namespaces: list[str], liveness_port: int, json_logs: bool, level: int) -> None:
    import ctrain.controller.handlers  # noqa: F401  (registers the handlers)

    kopf.configure(
        verbose=level <= logging.DEBUG,
        log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.PLAIN,
        log_prefix=False,
    )
    logging.getLogger("ctrain").setLevel(level)
    quiet_libraries(level)
    endpoint = f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=endpoint,
    )
