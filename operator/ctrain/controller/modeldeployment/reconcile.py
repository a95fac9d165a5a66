"""Reconcile one ModelDeployment: resolve the version, apply Service and Deployments, report.

A pass follows the model reference (`champion`, `latest` or a version) in the storage
watch and reads its latest reading, never S3 itself: the watch reads it once for every
ModelDeployment of that model and enqueues them all when it changes. The Service and the
Deployments come from the runtime's caches and are created only when absent and patched
only when their spec hash differs. A pass is due again only when `plan` says so (a
canary being judged) or drift monitoring wants its next check; everything else arrives
as an event (a Deployment or a pod changed, the champion moved).

A canary is judged on counter deltas over one window (`observe.canary_window`). When
`plan` blames the model for a failed rollout, `_demote` marks the version rejected in the
registry and moves the champion back, before anything else of the pass is applied: if S3
fails, the whole pass is retried and decides the same again.

Where later work plugs in: `observe` (what the pass reads before planning: canary
analysis, pod scraping), `_apply` (children), `reject` (a refused spec in status),
`_monitor` (drift) and `performance.monitor` (live performance: a check's Job).
"""

import logging
from typing import Any

from pydantic import ValidationError

from ctrain.api import (
    ConditionType,
    DriftStatus,
    ModelDeploymentPhase,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Reason,
)
from ctrain.api.common import validation_message
from ctrain.controller import health, metrics
from ctrain.controller.conditions import changed_conditions, set_condition
from ctrain.controller.kube import DEPLOYMENTS, JOBS, MODELDEPLOYMENTS, PODS, SERVICES
from ctrain.controller.modeldeployment import observe, performance, probe
from ctrain.controller.modeldeployment.analysis import Counts
from ctrain.controller.modeldeployment.builders import (
    DEPLOYMENT_LABEL,
    HTTP_PORT,
    SPEC_HASH,
    TRACK_LABEL,
    VERSION_LABEL,
    build_deployment,
    build_service,
    deployment_name,
    endpoint,
    selector,
    service_name,
)
from ctrain.controller.modeldeployment.plan import Observed, Track, plan
from ctrain.controller.runtime.context import Context, Rejected
from ctrain.controller.runtime.engine import Kind
from ctrain.controller.runtime.owners import controlled_by, labelled
from ctrain.controller.runtime.status import Event, post_events, write_status
from ctrain.controller.runtime.store import ObjectRef
from ctrain.controller.storage.clients import location
from ctrain.controller.storage.facts import ModelFact, Reading, Resolved
from ctrain.registry import ChampionMoved, VersionNotFound

__all__ = ["KIND", "reconcile", "reject", "resolution"]

log = logging.getLogger("ctrain.operator")
Body = dict[str, Any]
DRIFT_CHECKED = "drift-checked"  # per-object memory: monotonic time of the last drift check


def _track(deployment: Body | None) -> Track | None:
    if deployment is None:
        return None
    spec, status = deployment["spec"], deployment.get("status") or {}
    replicas = int(spec.get("replicas", 1))
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 1)
    complete = (
        current
        and all(
            int(status.get(key) or 0) == replicas
            for key in ("updatedReplicas", "replicas", "availableReplicas")
        )
        and not status.get("unavailableReplicas")
    )
    exceeded = current and any(
        c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
        for c in status.get("conditions") or []
    )
    return Track(
        version=deployment["spec"]["template"]["metadata"]["labels"][VERSION_LABEL],
        replicas=replicas,
        ready=int(status.get("readyReplicas") or 0),
        complete=complete,
        deadline_exceeded=exceeded,
    )


def resolution(spec: ModelDeploymentSpec, reading: Reading) -> tuple[str | None, str | None]:
    """(version, None) or (None, why not) for the requested `version`."""
    if reading.failure is None and isinstance(reading.value, Resolved):
        return reading.value.version, None
    why = reading.failure.message if reading.failure else "nothing resolved"
    reason = Reason.VERSION_NOT_FOUND
    if reading.failure and reading.failure.reason == Reason.STORAGE_FORBIDDEN:
        reason = Reason.STORAGE_FORBIDDEN  # not missing: the operator may not look
    return None, f"{reason}: model {spec.model} {spec.version}: {why}"


def reconcile(context: Context, body: Body) -> float | None:
    metadata = body["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    ref = ObjectRef("ModelDeployment", namespace, name)
    try:
        spec = ModelDeploymentSpec.parse(body.get("spec") or {})
    except ValidationError as error:
        raise Rejected(Reason.INVALID_SPEC, validation_message(error)) from error
    fact = ModelFact(location(spec.storage, context.config), spec.model, str(spec.version))
    reading = context.storage.follow(ref, {fact: context.config.registry_poll_seconds})[fact]
    if reading is None:
        return None  # the storage watch enqueues this object once the version is read
    old = ModelDeploymentStatus.parse(body.get("status") or {})
    generation = metadata.get("generation", 1)
    desired, resolve_error = resolution(spec, reading)
    deployments = context.store(DEPLOYMENTS)
    stable = deployments.get(namespace, deployment_name(name, "stable"))
    canary = deployments.get(namespace, deployment_name(name, "canary"))
    pods = context.store(PODS).owned_by(ref)
    canary_track = _track(canary)
    window = (Counts(), Counts())
    if canary_track is not None:
        # Only pods the two Deployments' current ReplicaSets control speak for a track.
        trusted = probe.owned_pods(context.kube, canary, _on_track(pods, "canary"))
        trusted += probe.owned_pods(context.kube, stable, _on_track(pods, "stable"))
        window = observe.canary_window(context.memory, ref, old, trusted, canary_track.version)
    elif context.memory.get(ref, observe.STABLE_BASELINE) is not None:
        context.memory.put(ref, observe.STABLE_BASELINE, None)  # that canary is over
    seen = Observed(
        desired,
        resolve_error,
        _track(stable),
        canary_track,
        *window,
        now=context.clock(),
        unscheduled=observe.unscheduled(pods),
    )
    result = plan(spec, old, seen, generation)
    events: list[Event] = []
    if result.demote is not None:
        version, why, proven = result.demote
        fault = None if proven else observe.model_fault(pods, version)
        if proven or fault is not None:
            why = why if proven else f"{why}: the model failed to load ({fault})"
            events += _demote(context, body, spec, fact, result.status, version, why)
        else:
            log.info("modeldeployment %s: %s; not rejected: no pod reported a fault of the "
                     "model", ref, why)  # fmt: skip
    if result.stable is not None:
        version, replicas = result.stable
        manifest = build_deployment(
            body, spec, context.config, track="stable", version=version, replicas=replicas
        )
        _apply(context, stable, manifest)
    if result.canary is not None:
        version, replicas = result.canary
        manifest = build_deployment(
            body, spec, context.config, track="canary", version=version, replicas=replicas
        )
        _apply(context, canary, manifest)
    elif canary is not None:
        context.kube.delete(DEPLOYMENTS, namespace, deployment_name(name, "canary"))
    status = result.status
    status.selector = ",".join(f"{k}={v}" for k, v in selector(name).items())
    status.endpoint = endpoint(name, namespace, spec.model)
    recheck = result.recheck
    if spec.monitoring.drift.enabled:
        drift_next = _monitor(context, ref, spec, status, pods, stable)
        recheck = drift_next if recheck is None else min(recheck, drift_next)
    else:
        status.drift = None
    live = spec.monitoring.performance
    if live is not None and live.enabled:
        checked_next = performance.monitor(context, body, spec, live, status)
        recheck = checked_next if recheck is None else min(recheck, checked_next)
    else:
        performance.clear(context, body, status)
    events = list(result.events) + events
    for reason, _message, _warning in result.events:
        if reason in (Reason.ROLLED_BACK, Reason.CANARY_FAILED):
            metrics.ROLLBACKS.labels(reason).inc()
    _write(context, body, old, status, events)
    # Last: the apiserver allocates a cluster IP for a new Service, which can take seconds
    # on a busy control plane; the status says what happens meanwhile.
    _ensure_service(context, body, spec)
    return recheck


def _demote(
    context: Context,
    body: Body,
    spec: ModelDeploymentSpec,
    fact: ModelFact,
    status: ModelDeploymentStatus,
    version: str,
    why: str,
) -> list[Event]:
    """Reject `version` in the registry and move the champion back from it (compare-and-set).

    Errors of the store propagate: the pass is retried and plans the same failure again.
    """
    metadata = body["metadata"]
    by = f"ModelDeployment {metadata['namespace']}/{metadata['name']}"
    registry = context.storage.registry(fact.location)
    registry.reject(spec.model, version, reason=why, by=by)
    try:
        change = registry.demote(spec.model, version, reason=why, by=by)
        moved = f"; the champion moved back to version {change.to_version}"
    except ChampionMoved as error:
        moved = f"; it is not the champion ({error})"
    except VersionNotFound:
        moved = "; no earlier champion to move back to: champion resolves to none"
    status.rejected_version = version
    context.storage.refresh(fact)
    message = f"version {version} of {spec.model} rejected in the registry: {why}{moved}"
    log.warning("modeldeployment %s: %s", by, message)
    return [(Reason.MODEL_REJECTED, message, True)]


def _on_track(pods: list[Body], track: str) -> list[Body]:
    return [p for p in pods if (p["metadata"].get("labels") or {}).get(TRACK_LABEL) == track]


def _ensure_service(context: Context, body: Body, spec: ModelDeploymentSpec) -> None:
    """Create the Service when it is absent; one that exists is left as it is."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    if context.store(SERVICES).get(namespace, service_name(name)) is None:
        context.remember(SERVICES, context.kube.create(SERVICES, build_service(body, spec)))


def _apply(context: Context, existing: Body | None, manifest: Body) -> None:
    """Create the Deployment when absent, patch it when its spec hash differs."""
    metadata = manifest["metadata"]
    namespace, name = metadata["namespace"], metadata["name"]
    if existing is None:
        created = context.kube.create(DEPLOYMENTS, manifest)
        if created is not None:
            context.remember(DEPLOYMENTS, created)
            return
        existing = context.remember(DEPLOYMENTS, context.kube.get(DEPLOYMENTS, namespace, name))
        if existing is None:
            return  # created and deleted meanwhile: the next event brings it back
    wanted = metadata["annotations"][SPEC_HASH]
    if (existing["metadata"].get("annotations") or {}).get(SPEC_HASH) == wanted:
        return
    context.remember(DEPLOYMENTS, context.kube.patch(DEPLOYMENTS, namespace, name, manifest))


def _monitor(
    context: Context,
    ref: ObjectRef,
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    pods: list[Body],
    stable: Body | None,
) -> float:
    """Check drift when its interval has passed; seconds until the next check is due."""
    drift = spec.monitoring.drift
    now = context.clock().timestamp()
    last: float | None = context.memory.get(ref, DRIFT_CHECKED)
    if last is not None and now - last < drift.interval_seconds and status.drift is not None:
        return drift.interval_seconds - (now - last)
    context.memory.put(ref, DRIFT_CHECKED, now)
    current = status.current_version
    serving = [p for p in pods if p["metadata"]["labels"].get(VERSION_LABEL) == current]
    reports = probe.drift_reports(probe.scrape_ips(context.kube, stable, serving), HTTP_PORT)
    if not reports:
        return float(drift.interval_seconds)
    combined = DriftStatus.parse(probe.combine_drift(reports, drift.threshold, drift.min_samples))
    status.drift = combined
    samples, score = combined.samples or 0, combined.score
    if combined.detected and score is not None:
        reason = Reason.DRIFT_DETECTED
        message = f"drift score {score:.3f} above {drift.threshold} over {samples} served rows"
    elif samples < drift.min_samples or score is None:
        reason = Reason.NOT_ENOUGH_SAMPLES
        message = f"{samples} served rows of the {drift.min_samples} needed to judge drift"
    else:
        reason, message = Reason.NO_DRIFT, f"drift score {score:.3f} within {drift.threshold}"
    status.conditions = set_condition(
        status.conditions,
        ConditionType.DRIFT_DETECTED,
        bool(combined.detected),
        reason,
        message,
        status.observed_generation,
        context.clock(),
    )
    return float(drift.interval_seconds)


def reject(context: Context, body: Body, rejected: Rejected) -> None:
    old = ModelDeploymentStatus.parse(body.get("status") or {})
    generation = body["metadata"].get("generation", 1)
    status = old.model_copy(deep=True)
    status.phase = ModelDeploymentPhase.DEGRADED
    status.message = rejected.message
    status.observed_generation = generation
    status.conditions = set_condition(
        old.conditions,
        ConditionType.READY,
        False,
        rejected.reason,
        rejected.message,
        generation,
        context.clock(),
    )
    _write(context, body, old, status, [])


def _write(
    context: Context,
    body: Body,
    old: ModelDeploymentStatus,
    status: ModelDeploymentStatus,
    events: list[Event],
) -> None:
    status = health.modeldeployment(status, context.clock())
    if write_status(context, MODELDEPLOYMENTS, body, status) is None:
        return  # deleted meanwhile
    if old.phase != status.phase and not events:
        # A rollout's own Event (RollingOut, RolloutComplete, RolledBack) already tells
        # this transition; the phase's Event is for the others (a version not found).
        degraded = status.phase == ModelDeploymentPhase.DEGRADED
        events.append((str(status.phase), status.message or "", degraded))
    for condition in changed_conditions(old.conditions, status.conditions):
        if condition.type == ConditionType.DRIFT_DETECTED and condition.status == "True":
            events.append((condition.reason, condition.message, True))
        if (
            condition.type == ConditionType.PERFORMANCE_DEGRADED
            and condition.reason != Reason.PERFORMANCE_NOT_CHECKED
        ):
            # Missing labels are expected for a while; a failed check or a degradation is not.
            warning = condition.status == "True" or (
                condition.reason == Reason.PERFORMANCE_CHECK_FAILED
            )
            message = f"PerformanceDegraded={condition.status}: {condition.message}"
            events.append((condition.reason, message, warning))
    post_events(context, body, events)


KIND = Kind(
    resource=MODELDEPLOYMENTS,
    reconcile=reconcile,
    reject=reject,
    workers=8,
    children={
        DEPLOYMENTS: controlled_by("ModelDeployment"),
        SERVICES: controlled_by("ModelDeployment"),
        JOBS: controlled_by("ModelDeployment"),  # the live-performance check
        PODS: labelled(DEPLOYMENT_LABEL),
    },
    forget=performance.forget_series,
)
