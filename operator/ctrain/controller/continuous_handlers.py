"""kopf registrations of the ContinuousTraining controller: route events to `continuous`.

Only watch-events handlers and a resync thread: kopf's event handlers write nothing to the
watched object (no finalizer, no progress annotations), so the operator never touches a
user's spec, labels or annotations. The resync thread re-checks every loop every few
seconds (`CTRAIN_CT_RESYNC_SECONDS`, default 5): schedules, dataset polls and drift are
functions of time and of other objects, not of events on the loop itself.
"""

import logging
import os
import threading
from typing import Any

import kopf

from ctrain.api import GROUP, VERSION
from ctrain.controller import continuous
from ctrain.controller.continuous_builders import CONTINUOUS_LABEL
from ctrain.controller.handlers import Context, _safely, resync_forever

log = logging.getLogger("ctrain.operator")
MEMORY_KEY = "ct_memory"


def resync_seconds() -> float:
    return float(os.environ.get("CTRAIN_CT_RESYNC_SECONDS", "5"))


def _route(ctx: Context, memory: continuous.LoopMemory, namespace: str, name: str) -> None:
    _safely(
        f"continuoustraining {namespace}/{name}",
        continuous.reconcile,
        ctx.kube,
        ctx.config,
        namespace,
        name,
        None,
        memory,
    )


@kopf.on.startup()
def continuous_startup(memo: kopf.Memo, **_: Any) -> None:
    if "ctx" not in memo:  # handlers.startup builds it; kopf retries this one until then
        raise kopf.TemporaryError("waiting for the operator context", delay=1)
    memory = continuous.LoopMemory()
    memo[MEMORY_KEY] = memory
    threading.Thread(
        target=resync_forever,
        args=(
            memo["ctx"],
            continuous.PLURAL,
            resync_seconds(),
            lambda namespace, name: _route(memo["ctx"], memory, namespace, name),
        ),
        name="resync-ct",
        daemon=True,
    ).start()


@kopf.on.event(GROUP, VERSION, continuous.PLURAL)
def continuoustraining_event(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memory: continuous.LoopMemory = memo[MEMORY_KEY]
    if type == "DELETED":
        memory.forget(body.metadata.uid or "")
        return
    _route(memo["ctx"], memory, body.metadata.namespace or "", body.metadata.name or "")


@kopf.on.event(GROUP, VERSION, continuous.RUNS, labels={CONTINUOUS_LABEL: kopf.PRESENT})
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
