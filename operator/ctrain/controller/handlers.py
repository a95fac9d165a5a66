"""kopf registrations: each handler parses what it was given and routes to a reconciler.

No business logic lives here. Handlers are synchronous (kopf runs them in a thread pool)
and never raise for a bad object: every outcome ends in status and an Event. Only
watch-event handlers and resync threads: kopf's event handlers write nothing to the
watched object (no finalizer, no progress annotations), so the operator never touches a
user's spec, labels or annotations. The resync threads re-check every object of a kind
periodically: aliases move in the registry, canaries age, and a ContinuousTraining's
schedules, dataset polls and drift are functions of time and of other objects
(`CTRAIN_CT_RESYNC_SECONDS`, default 5).
"""

import dataclasses
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import kopf
from kubernetes import client, config

from ctrain.api import GROUP, VERSION
from ctrain.controller import metrics
from ctrain.controller.config import OperatorConfig
from ctrain.controller.continuoustraining import reconcile as continuoustraining
from ctrain.controller.continuoustraining.builders import CONTINUOUS_LABEL
from ctrain.controller.kube import Kube
from ctrain.controller.modeldeployment import reconcile as modeldeployment
from ctrain.controller.modeldeployment.builders import DEPLOYMENT_LABEL
from ctrain.controller.trainingjob import reconcile as trainingjob
from ctrain.controller.trainingjob.builders import TRAININGJOB_LABEL

log = logging.getLogger("ctrain.operator")
RESYNC_SECONDS = 30.0
# ModelDeployments are re-checked often: aliases move in the registry, canaries age.
SERVING_RESYNC_SECONDS = 5.0
MEMORY_KEY = "ct_memory"


@dataclasses.dataclass
class Context:
    kube: Kube
    config: OperatorConfig
    stopping: threading.Event


def _load_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # our own Events, one per decision
    settings.execution.max_workers = 8
    settings.watching.server_timeout = 300
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    context = Context(Kube(_load_client()), OperatorConfig.from_env(), threading.Event())
    memo["ctx"] = context
    port = int(os.environ.get("CTRAIN_METRICS_PORT", "0") or 0)
    if port:
        metrics.serve(port)
    resyncs = [
        (
            trainingjob.PLURAL,
            RESYNC_SECONDS,
            _reconciler("trainingjob", trainingjob.reconcile, context),
            _finished,
        ),
        (
            modeldeployment.PLURAL,
            SERVING_RESYNC_SECONDS,
            _reconciler("modeldeployment", modeldeployment.reconcile, context),
            lambda _body: False,
        ),
    ]
    for plural, interval, visit, skip in resyncs:
        threading.Thread(
            target=resync_forever,
            args=(context, plural, interval, visit, skip),
            name=f"resync-{plural}",
            daemon=True,
        ).start()
    log.info("ctrain operator started (%s)", context.config)


@kopf.on.cleanup()
def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo["ctx"].stopping.set()


def _safely(what: str, func: Any, *args: Any) -> None:
    """One object's failure is logged and retried on the next event or resync; never fatal."""
    kind = what.split(" ", 1)[0]
    metrics.RECONCILIATIONS.labels(kind).inc()
    with metrics.RECONCILE_SECONDS.labels(kind).time():
        try:
            func(*args)
        except Exception:
            metrics.RECONCILE_ERRORS.labels(kind).inc()
            log.exception("reconciling %s failed; it will be retried", what)


@kopf.on.event(GROUP, VERSION, trainingjob.PLURAL)
def trainingjob_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        return
    ctx: Context = memo["ctx"]
    _safely(
        f"trainingjob {body.metadata.namespace}/{body.metadata.name}",
        trainingjob.reconcile,
        ctx.kube,
        ctx.config,
        body.metadata.namespace,
        body.metadata.name,
    )


@kopf.on.event("batch", "v1", "jobs", labels={TRAININGJOB_LABEL: kopf.PRESENT})
@kopf.on.event("", "v1", "pods", labels={TRAININGJOB_LABEL: kopf.PRESENT})
def training_child_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    ctx: Context = memo["ctx"]
    owner = body.metadata.labels[TRAININGJOB_LABEL]
    _safely(
        f"trainingjob {body.metadata.namespace}/{owner}",
        trainingjob.reconcile,
        ctx.kube,
        ctx.config,
        body.metadata.namespace,
        owner,
    )


def resync_forever(
    context: Context,
    plural: str,
    interval: float,
    visit: Callable[[str, str], None],
    skip: Callable[[dict[str, Any]], bool] = lambda _body: False,
) -> None:
    """Level-triggered safety net: re-check every object of a kind, events or not."""
    while not context.stopping.wait(interval):
        try:
            for namespace in context.config.watch_namespaces or (None,):
                for body in context.kube.list_custom(plural, namespace):
                    if not skip(body):
                        visit(body["metadata"]["namespace"], body["metadata"]["name"])
        except Exception:
            log.exception("%s resync failed; trying again in %.0fs", plural, interval)


def _reconciler(
    kind: str, reconcile: Callable[..., None], context: Context
) -> Callable[[str, str], None]:
    def visit(namespace: str, name: str) -> None:
        _safely(
            f"{kind} {namespace}/{name}", reconcile, context.kube, context.config, namespace, name
        )

    return visit


def _finished(body: dict[str, Any]) -> bool:
    return (body.get("status") or {}).get("phase") in ("Succeeded", "Failed")


@kopf.on.event(GROUP, VERSION, modeldeployment.PLURAL)
def modeldeployment_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if type == "DELETED":
        metrics.PHASES.record("ModelDeployment", body.metadata.uid or "", None)
        return
    ctx: Context = memo["ctx"]
    _safely(
        f"modeldeployment {body.metadata.namespace}/{body.metadata.name}",
        modeldeployment.reconcile,
        ctx.kube,
        ctx.config,
        body.metadata.namespace,
        body.metadata.name,
    )


@kopf.on.event("apps", "v1", "deployments", labels={DEPLOYMENT_LABEL: kopf.PRESENT})
def serving_child_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    ctx: Context = memo["ctx"]
    owner = body.metadata.labels[DEPLOYMENT_LABEL]
    _safely(
        f"modeldeployment {body.metadata.namespace}/{owner}",
        modeldeployment.reconcile,
        ctx.kube,
        ctx.config,
        body.metadata.namespace,
        owner,
    )


# --- ContinuousTraining -----------------------------------------------------------------


def resync_seconds() -> float:
    return float(os.environ.get("CTRAIN_CT_RESYNC_SECONDS", "5"))


def _route(ctx: Context, memory: continuoustraining.LoopMemory, namespace: str, name: str) -> None:
    _safely(
        f"continuoustraining {namespace}/{name}",
        continuoustraining.reconcile,
        ctx.kube,
        ctx.config,
        namespace,
        name,
        None,
        memory,
    )


@kopf.on.startup()
def continuous_startup(memo: kopf.Memo, **_: Any) -> None:
    if "ctx" not in memo:  # `startup` builds it; kopf retries this one until then
        raise kopf.TemporaryError("waiting for the operator context", delay=1)
    memory = continuoustraining.LoopMemory()
    memo[MEMORY_KEY] = memory
    threading.Thread(
        target=resync_forever,
        args=(
            memo["ctx"],
            continuoustraining.PLURAL,
            resync_seconds(),
            lambda namespace, name: _route(memo["ctx"], memory, namespace, name),
        ),
        name="resync-ct",
        daemon=True,
    ).start()


@kopf.on.event(GROUP, VERSION, continuoustraining.PLURAL)
def continuoustraining_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memory: continuoustraining.LoopMemory = memo[MEMORY_KEY]
    if type == "DELETED":
        memory.forget(body.metadata.uid or "")
        return
    _route(memo["ctx"], memory, body.metadata.namespace or "", body.metadata.name or "")


@kopf.on.event(GROUP, VERSION, continuoustraining.RUNS, labels={CONTINUOUS_LABEL: kopf.PRESENT})
def run_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A run changed (or went away): its loop records the outcome at once."""
    owner = next(
        (
            ref["name"]
            for ref in body.metadata.get("ownerReferences") or []
            if ref.get("kind") == "ContinuousTraining" and ref.get("controller")
        ),
        None,
    )
    if owner is not None:
        _route(memo["ctx"], memo[MEMORY_KEY], body.metadata.namespace or "", owner)
