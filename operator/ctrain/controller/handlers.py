"""kopf registrations: one startup hook builds the runtime; event handlers only enqueue.

kopf watches the three kinds and the children the operator labels (Jobs, pods,
Deployments, Services with `app.kubernetes.io/managed-by=ctrain`, filtered by the
apiserver), and hands each event here. A handler records the body and enqueues keys
(`Runtime.observe`) and returns at once: reconciling happens in the runtime's per-kind
workers (`ctrain.controller.runtime`), never in kopf's event loop. kopf's event
handlers write nothing to the watched objects (no finalizer, no progress annotations),
so the operator never touches a user's spec, labels or annotations.
"""

import logging
import os
from typing import Any

import kopf
from kubernetes import client, config

from ctrain.controller import metrics
from ctrain.controller.config import OperatorConfig
from ctrain.controller.continuoustraining.reconcile import KIND as CONTINUOUSTRAINING
from ctrain.controller.kube import (
    CONTINUOUSTRAININGS,
    DEPLOYMENTS,
    JOBS,
    MODELDEPLOYMENTS,
    PODS,
    SERVICES,
    TRAININGJOBS,
    Kube,
    Resource,
)
from ctrain.controller.modeldeployment.reconcile import KIND as MODELDEPLOYMENT
from ctrain.controller.podspec import MANAGED_BY
from ctrain.controller.runtime.context import Context, Memory
from ctrain.controller.runtime.engine import Runtime
from ctrain.controller.runtime.events import EventPoster
from ctrain.controller.runtime.owners import stores_for
from ctrain.controller.runtime.store import Followers
from ctrain.controller.storage.clients import S3Clients
from ctrain.controller.storage.watch import StorageWatch
from ctrain.controller.trainingjob.reconcile import KIND as TRAININGJOB

log = logging.getLogger("ctrain.operator")
RUNTIME = "runtime"
KINDS = (TRAININGJOB, MODELDEPLOYMENT, CONTINUOUSTRAINING)
CHILDREN = (JOBS, PODS, DEPLOYMENTS, SERVICES)  # watched with the operator's label only


def _load_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api_client = client.ApiClient()
    # Every worker thread may hold a connection; the default pool of 4 would queue them.
    api_client.rest_client.pool_manager.connection_pool_kw["maxsize"] = 32
    return api_client


def build_runtime(
    kube: Kube, operator_config: OperatorConfig, *, background_events: bool = True
) -> Runtime:
    """The Context and the loops of every kind, not yet started (`background_events`
    False: Events are posted in the pass, which tests read in order)."""
    runtime: Runtime | None = None

    def wake(endpoint: Any) -> None:
        assert runtime is not None
        runtime.wake(endpoint)

    def notify(ref: Any) -> None:
        assert runtime is not None
        runtime.enqueue(ref)

    storage = StorageWatch(S3Clients(operator_config), wake=wake, notify=notify)
    metrics.MODEL_METRICS.source = storage.model_metrics
    context = Context(
        kube=kube,
        config=operator_config,
        stores=stores_for((kind.resource, kind.children) for kind in KINDS),
        storage=storage,
        relations=Followers(),
        memory=Memory(),
    )
    runtime = Runtime(context, KINDS, EventPoster(kube) if background_events else None)
    return runtime


class NoDiffBase(kopf.DiffBaseStorage):
    """No change detection: the operator has event handlers only, so kopf's diff base (a
    deep copy of every body on every event) would be computed for nothing."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.enabled = False  # our own Events, one per transition
    settings.watching.server_timeout = 300
    settings.persistence.finalizer = "ctrain.dev/finalizer"
    settings.persistence.diffbase_storage = NoDiffBase()
    selector = ",".join(f"{key}={value}" for key, value in MANAGED_BY.items())
    for child in CHILDREN:
        settings.watching.label_selectors[child.group, child.version, child.plural] = selector
    port = int(os.environ.get("CTRAIN_METRICS_PORT", "0") or 0)
    if port:
        metrics.serve(port)
    operator_config = OperatorConfig.from_env()
    runtime = build_runtime(Kube(_load_client()), operator_config)
    runtime.start()
    memo[RUNTIME] = runtime
    log.info("ctrain operator started (%s)", operator_config)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo[RUNTIME].stop()


def _observe(resource: Resource, event: kopf.RawEvent, memo: kopf.Memo) -> None:
    runtime: Runtime = memo[RUNTIME]
    runtime.observe(resource, event.get("type"), dict(event["object"]))


@kopf.on.event(TRAININGJOBS.group, TRAININGJOBS.version, TRAININGJOBS.plural)
async def trainingjob_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(TRAININGJOBS, event, memo)


@kopf.on.event(MODELDEPLOYMENTS.group, MODELDEPLOYMENTS.version, MODELDEPLOYMENTS.plural)
async def modeldeployment_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(MODELDEPLOYMENTS, event, memo)


@kopf.on.event(CONTINUOUSTRAININGS.group, CONTINUOUSTRAININGS.version, CONTINUOUSTRAININGS.plural)
async def continuoustraining_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(CONTINUOUSTRAININGS, event, memo)


@kopf.on.event(JOBS.group, JOBS.version, JOBS.plural, labels=MANAGED_BY)
async def job_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(JOBS, event, memo)


@kopf.on.event(PODS.group, PODS.version, PODS.plural, labels=MANAGED_BY)
async def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(PODS, event, memo)


@kopf.on.event(DEPLOYMENTS.group, DEPLOYMENTS.version, DEPLOYMENTS.plural, labels=MANAGED_BY)
async def deployment_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(DEPLOYMENTS, event, memo)


@kopf.on.event(SERVICES.group, SERVICES.version, SERVICES.plural, labels=MANAGED_BY)
async def service_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    _observe(SERVICES, event, memo)
