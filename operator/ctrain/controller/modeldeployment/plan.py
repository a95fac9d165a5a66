"""The ModelDeployment rollout state machine, as a pure function of what was observed.

Inputs: the requested version as resolved in the registry, the stable and canary
Deployments as they are, the canary's request counts, the old status and the time.
Output: the Deployments as they should be, the new status and the Events to post. The
reconciler applies the result; running it again on the same observations changes nothing.

    no stable Deployment ─────────────► roll out the requested version
    RollingUpdate, new version ───────► patch the stable template (maxUnavailable 0)
    Canary, new version ──────────────► stable at current + canary at new (weight %)
        analysis Failed ──────────────► remove canary, mark the version rolled back
        Healthy and promoteAfterSeconds
          passed ─────────────────────► stable rolls to new, canary removed when done
        no Healthy verdict within
          promoteAfterSeconds +
          progressDeadlineSeconds ────► remove canary (CanaryInconclusive)
    rollout past its progress deadline ► back to previousVersion, Degraded
A rolled-back version is not retried until the requested version changes. The canary's
verdict comes from `analysis.judge` (fails closed: no traffic or no metrics never promote).

A failure attributable to the model (a Failed canary analysis; pods that were scheduled
but never got ready, once their servers say the model failed to load) sets `Plan.demote`:
the reconciler marks the version rejected in the registry and moves the champion back.
Waiting for traffic or an inconclusive analysis rolls back without blaming the model.

`Plan.recheck` says when the state machine needs to look again without any event: while
a canary is being judged (its counts, its promotion time, its deadline).
"""

import dataclasses
import datetime
from collections.abc import Callable

from ctrain.api import (
    ConditionType,
    ModelDeploymentPhase,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    Reason,
)
from ctrain.api.status import CanaryAnalysis, CanaryVerdict
from ctrain.controller.conditions import set_condition
from ctrain.controller.modeldeployment.analysis import Counts, Verdict, judge

__all__ = [
    "CANARY_CHECK_SECONDS",
    "Observed",
    "Plan",
    "Track",
    "canary_replicas",
    "effective_weight",
    "plan",
]

CANARY_CHECK_SECONDS = 5.0  # how often a canary's error rate is read while it is judged
EventSink = Callable[..., None]


def canary_replicas(replicas: int, weight: int) -> tuple[int, int]:
    """(stable, canary) pod counts whose canary share is closest to `weight` percent.

    The canary gets at least one pod and the stable track keeps at least `replicas`, and
    at most twice that for the duration of the canary when that is what the weight needs.
    """
    best: tuple[float, int, int] | None = None
    base = max(replicas, 1)
    for canary in range(1, base + 1):
        for stable in range(base, 2 * base + 1):
            error = abs(canary / (stable + canary) - weight / 100)
            candidate = (round(error, 6), stable + canary, canary)
            if best is None or candidate < best:
                best = candidate
    assert best is not None
    _, total, canary = best
    return total - canary, canary


def effective_weight(stable: int, canary: int) -> int:
    return round(100 * canary / (stable + canary)) if stable + canary else 0


@dataclasses.dataclass(frozen=True)
class Track:
    """What one Deployment looks like now."""

    version: str
    replicas: int
    ready: int
    complete: bool  # the current template is fully rolled out and available
    deadline_exceeded: bool  # the current template missed progressDeadlineSeconds


@dataclasses.dataclass(frozen=True)
class Observed:
    desired: str | None  # the requested version resolved in the registry
    resolve_error: str | None
    stable: Track | None
    canary: Track | None
    canary_counts: Counts = dataclasses.field(default_factory=Counts)  # since its pods began
    stable_counts: Counts = dataclasses.field(default_factory=Counts)  # since the canary did
    now: datetime.datetime = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )
    # Versions with a pod the scheduler has not placed: a rollout of those that misses its
    # deadline may be the cluster's fault (no room), not the model's.
    unscheduled: frozenset[str] = frozenset()


@dataclasses.dataclass
class Plan:
    status: ModelDeploymentStatus
    stable: tuple[str, int] | None = None  # (version, replicas) the stable Deployment should have
    canary: tuple[str, int] | None = None  # None: no canary Deployment
    events: list[tuple[str, str, bool]] = dataclasses.field(
        default_factory=list
    )  # reason, msg, warn
    recheck: float | None = None  # seconds until the plan needs another look, events or not
    # (version, why, proven): reject it and move the champion back; a rollout that never got
    # ready is not proven: the reconciler looks for the pods' own word that the model failed.
    demote: tuple[str, str, bool] | None = None


def _stamp(now: datetime.datetime) -> datetime.datetime:
    return now.replace(microsecond=0)  # status times have whole seconds


def _elapsed(since: datetime.datetime | None, now: datetime.datetime) -> float:
    return 0.0 if since is None else (now - since).total_seconds()


def plan(
    spec: ModelDeploymentSpec, old: ModelDeploymentStatus, seen: Observed, generation: int
) -> Plan:
    status = old.model_copy(deep=True)
    status.observed_generation = generation
    status.replicas = spec.replicas
    result = Plan(status=status)
    now = seen.now
    current = old.current_version

    def event(reason: str, message: str, warning: bool = False) -> None:
        result.events.append((reason, message, warning))

    target = seen.desired
    held = bool(target and target == old.rolled_back_version and current)
    if held:
        target = current
    if target is None:
        if seen.stable is None:
            _summarise(result, spec, seen, message=seen.resolve_error or "no version to serve")
            return result
        target = seen.stable.version
    if seen.desired and seen.desired != old.rolled_back_version:
        status.rolled_back_version = None

    if seen.stable is None:
        result.stable = (target, spec.replicas)
        status.rollout_start_time = _stamp(now)
        event(Reason.ROLLING_OUT, f"deploying version {target}")
        _summarise(result, spec, seen, message=f"deploying version {target}")
        return result

    canary = spec.strategy.type == "Canary" and current and target != current
    if canary and current and seen.stable.version == current:
        _canary(result, spec, old, seen, current, target, event)
        return result

    if seen.stable.version != target:
        result.stable = (target, spec.replicas)
        if current and current != target:
            status.previous_version = current
        status.rollout_start_time = _stamp(now)
        event(Reason.ROLLING_OUT, f"rolling out version {target} (serving {current or 'none'})")
        _summarise(result, spec, seen, message=f"rolling out version {target}")
        return result

    result.stable = (target, spec.replicas)
    if seen.stable.complete:
        if current != target:
            event(Reason.ROLLOUT_COMPLETE, f"version {target} is serving")
        status.current_version = target
        if status.canary_version:
            status.canary_analysis = None  # promoted: the analysis has served its purpose
        status.canary_version = None
        status.canary_start_time = None
        result.canary = None
    elif seen.stable.deadline_exceeded:
        previous = old.previous_version
        why = f"version {target} did not become ready within {spec.progress_deadline_seconds}s"
        if previous and previous != target:
            status.rolled_back_version = target
            result.stable = (previous, spec.replicas)
            status.rollout_start_time = _stamp(now)
            event(Reason.ROLLED_BACK, f"{why}; rolled back to {previous}", True)
        else:
            status.rolled_back_version = target
        _blame(result, old, seen, target, why, proven=False)
    elif seen.canary is not None:
        result.canary = (seen.canary.version, seen.canary.replicas)  # keep it until promoted
    message = ""
    if not seen.stable.complete and not seen.stable.deadline_exceeded and current != target:
        # The same words as when the rollout began, so a rollout in progress reads the same.
        verb = "rolling out" if current else "deploying"
        message = f"{verb} version {target}"
    _summarise(result, spec, seen, message=message)
    return result


def _canary(
    result: Plan,
    spec: ModelDeploymentSpec,
    old: ModelDeploymentStatus,
    seen: Observed,
    current: str,
    target: str,
    event: EventSink,
) -> None:
    status, now = result.status, seen.now
    settings = spec.strategy.canary_settings
    stable_pods, canary_pods = canary_replicas(spec.replicas, settings.weight)
    result.stable = (current, stable_pods)
    result.canary = (target, canary_pods)
    if status.canary_version != target:
        status.canary_version = target
        status.rollout_start_time = _stamp(now)
        status.canary_start_time = None
        status.canary_analysis = None
        event(
            Reason.CANARY_IN_PROGRESS,
            f"canary of version {target} with "
            f"{effective_weight(stable_pods, canary_pods)}% of the pods",
        )
    ready = (
        seen.canary is not None
        and seen.canary.version == target
        and seen.canary.ready >= canary_pods
    )
    if not ready:
        waited = _elapsed(status.rollout_start_time, now)
        if waited > spec.progress_deadline_seconds:
            why = (
                f"canary of version {target} did not become ready within "
                f"{spec.progress_deadline_seconds}s"
            )
            _abort(result, target, why, event)
            _blame(result, old, seen, target, why, proven=False)
            return
        # Pod events tell when it gets ready; only the deadline needs a timer.
        result.recheck = spec.progress_deadline_seconds - waited + 1
        _summarise(result, spec, seen, message=f"waiting for the canary of version {target}")
        return
    if status.canary_start_time is None:
        status.canary_start_time = _stamp(now)
    verdict = judge(settings, seen.canary_counts, seen.stable_counts)
    status.canary_analysis = _analysis(target, seen, verdict)
    if verdict.failed:
        why = f"canary of version {target} failed: {verdict.message}"
        _abort(result, target, why, event)
        _blame(result, old, seen, target, why, proven=True)
        return
    aged = _elapsed(status.canary_start_time, now)
    if verdict.healthy and aged >= settings.promote_after_seconds:
        result.stable = (target, spec.replicas)
        status.previous_version = current
        event(
            Reason.CANARY_PROMOTED,
            f"canary of version {target} promoted after {aged:.0f}s: {verdict.message}",
        )
        _summarise(result, spec, seen, message=f"promoting version {target}")
        return
    deadline = settings.promote_after_seconds + spec.progress_deadline_seconds
    if not verdict.healthy and aged >= deadline:
        why = f"canary of version {target} reached no verdict within {deadline}s"
        _abort(result, target, f"{why}: {verdict.message}", event, Reason.CANARY_INCONCLUSIVE)
        return
    left = (settings.promote_after_seconds if verdict.healthy else deadline) - aged
    result.recheck = max(1.0, min(CANARY_CHECK_SECONDS, left))
    _summarise(result, spec, seen, message=f"canary of version {target}: {verdict.message}")


def _analysis(target: str, seen: Observed, verdict: Verdict) -> CanaryAnalysis:
    canary, stable = seen.canary_counts, seen.stable_counts
    latency = canary.latency_p99_ms
    return CanaryAnalysis(
        version=target,
        requests=canary.requests,
        errors=canary.errors,
        stable_requests=stable.requests,
        stable_errors=stable.errors,
        latency_p99_ms=None if latency is None or latency == float("inf") else latency,
        restarts=canary.restarts,
        unscraped_pods=canary.unscraped + stable.unscraped,
        verdict=verdict.verdict,
        message=verdict.message,
    )


def _blame(
    result: Plan,
    old: ModelDeploymentStatus,
    seen: Observed,
    target: str,
    why: str,
    *,
    proven: bool,
) -> None:
    """Ask for `target` to be rejected, once, when its failure may be the model's: on the
    pass that found it failed (a first rollout stays failed pass after pass)."""
    if target in seen.unscheduled or target in (old.rejected_version, old.rolled_back_version):
        return
    result.demote = (target, why, proven)


def _abort(
    result: Plan, target: str, message: str, event: EventSink, reason: str = Reason.CANARY_FAILED
) -> None:
    status = result.status
    result.canary = None
    result.stable = (status.current_version or target, status.replicas or 0)
    status.rolled_back_version = target
    status.canary_version = None
    status.canary_start_time = None
    event(reason, message + "; canary removed", True)
    status.message = message


def _summarise(result: Plan, spec: ModelDeploymentSpec, seen: Observed, message: str = "") -> None:
    """Phase, conditions, replica counts and the message from the decisions above."""
    status = result.status
    generation = status.observed_generation
    conditions = list(status.conditions)
    ready_pods = (seen.stable.ready if seen.stable else 0) + (
        seen.canary.ready if seen.canary else 0
    )
    status.ready_replicas = ready_pods
    current = status.current_version
    serving = bool(current) and ready_pods > 0
    settled = (
        seen.stable is not None
        and result.stable is not None
        and result.canary is None
        and seen.canary is None
        and seen.stable.version == result.stable[0]
        and seen.stable.complete
        and seen.stable.replicas == result.stable[1]
    )
    rolled_back = status.rolled_back_version
    degraded = bool(rolled_back) and rolled_back == seen.desired
    if seen.resolve_error and not current:
        degraded = False
    if degraded:
        phase = ModelDeploymentPhase.DEGRADED
        text = status.message if "canary" in (status.message or "") else ""
        message = text or f"version {rolled_back} could not be rolled out; serving {current}"
    elif settled:
        phase = ModelDeploymentPhase.AVAILABLE
        message = message or f"serving version {current} ({ready_pods}/{spec.replicas} ready)"
    elif current or seen.stable is not None or result.stable is not None:
        phase = ModelDeploymentPhase.PROGRESSING
    else:
        phase = ModelDeploymentPhase.PENDING
    if seen.resolve_error:
        message = f"{message}; {seen.resolve_error}" if message else seen.resolve_error
    status.phase = phase
    status.message = message
    at = seen.now
    ready_reason = Reason.ROLLOUT_COMPLETE if serving else Reason.REPLICAS_UNAVAILABLE
    conditions = set_condition(
        conditions,
        ConditionType.READY,
        serving and phase != "Pending",
        ready_reason,
        message,
        generation,
        at,
    )
    analysed = status.canary_analysis.verdict if status.canary_analysis else None
    if status.canary_version and analysed == CanaryVerdict.WAITING_FOR_TRAFFIC:
        progressing_reason = Reason.CANARY_WAITING_FOR_TRAFFIC
    elif status.canary_version and analysed == CanaryVerdict.INCONCLUSIVE:
        progressing_reason = Reason.CANARY_INCONCLUSIVE
    elif status.canary_version:
        progressing_reason = Reason.CANARY_IN_PROGRESS
    elif phase == ModelDeploymentPhase.PROGRESSING:
        progressing_reason = Reason.ROLLING_OUT
    else:
        progressing_reason = Reason.ROLLOUT_COMPLETE
    conditions = set_condition(
        conditions,
        ConditionType.PROGRESSING,
        phase == ModelDeploymentPhase.PROGRESSING,
        progressing_reason,
        message,
        generation,
        at,
    )
    degraded_reason = Reason.VERSION_NOT_FOUND if seen.resolve_error else Reason.ROLLED_BACK
    conditions = set_condition(
        conditions,
        ConditionType.DEGRADED,
        degraded or bool(seen.resolve_error and not current),
        degraded_reason,
        message if degraded or seen.resolve_error else "",
        generation,
        at,
    )
    status.conditions = conditions
