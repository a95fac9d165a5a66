"""The ModelDeployment rollout state machine, as a pure function of what was observed.

Inputs: the requested version as resolved in the registry, the stable and canary
Deployments as they are, the canary's request counts, the old status and the time.
Output: the Deployments as they should be, the new status and the Events to post. The
reconciler applies the result; running it again on the same observations changes nothing.

    no stable Deployment ─────────────► roll out the requested version
    RollingUpdate, new version ───────► patch the stable template (maxUnavailable 0)
    Canary, new version ──────────────► stable at current + canary at new (weight %)
        canary error rate > max ──────► remove canary, mark the version rolled back
        promoteAfterSeconds passed ───► stable rolls to new, canary removed when done
    rollout past its progress deadline ► back to previousVersion, Degraded
A rolled-back version is not retried until the requested version changes.

`Plan.recheck` says when the state machine needs to look again without any event: while
a canary is being judged (its error rate, its promotion time, its deadline).
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
from ctrain.controller.conditions import set_condition

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
    canary_requests: int = 0
    canary_errors: int = 0
    now: datetime.datetime = dataclasses.field(
        default_factory=lambda: datetime.datetime.now(datetime.UTC)
    )


@dataclasses.dataclass
class Plan:
    status: ModelDeploymentStatus
    stable: tuple[str, int] | None = None  # (version, replicas) the stable Deployment should have
    canary: tuple[str, int] | None = None  # None: no canary Deployment
    events: list[tuple[str, str, bool]] = dataclasses.field(
        default_factory=list
    )  # reason, msg, warn
    recheck: float | None = None  # seconds until the plan needs another look, events or not


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
        _canary(result, spec, seen, current, target, event)
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
        status.canary_version = None
        status.canary_start_time = None
        result.canary = None
    elif seen.stable.deadline_exceeded:
        previous = old.previous_version
        if previous and previous != target:
            status.rolled_back_version = target
            result.stable = (previous, spec.replicas)
            status.rollout_start_time = _stamp(now)
            event(
                Reason.ROLLED_BACK,
                f"version {target} did not become ready within "
                f"{spec.progress_deadline_seconds}s; rolled back to {previous}",
                True,
            )
        else:
            status.rolled_back_version = target
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
            _abort(
                result,
                target,
                f"canary of version {target} did not become ready within "
                f"{spec.progress_deadline_seconds}s",
                event,
            )
            return
        # Pod events tell when it gets ready; only the deadline needs a timer.
        result.recheck = spec.progress_deadline_seconds - waited + 1
        _summarise(result, spec, seen, message=f"waiting for the canary of version {target}")
        return
    if status.canary_start_time is None:
        status.canary_start_time = _stamp(now)
    rate = seen.canary_errors / seen.canary_requests if seen.canary_requests else 0.0
    if rate > settings.max_error_rate:
        _abort(
            result,
            target,
            f"canary of version {target} failed {seen.canary_errors} of "
            f"{seen.canary_requests} requests ({rate:.1%} > {settings.max_error_rate:.1%})",
            event,
        )
        return
    aged = _elapsed(status.canary_start_time, now)
    if aged >= settings.promote_after_seconds:
        result.stable = (target, spec.replicas)
        status.previous_version = current
        event(
            Reason.CANARY_PROMOTED,
            f"canary of version {target} promoted after "
            f"{seen.canary_requests} requests with {rate:.1%} errors",
        )
        _summarise(result, spec, seen, message=f"promoting version {target}")
        return
    result.recheck = min(CANARY_CHECK_SECONDS, settings.promote_after_seconds - aged)
    _summarise(
        result,
        spec,
        seen,
        message=f"canary of version {target}: {seen.canary_requests} requests, {rate:.1%} errors",
    )


def _abort(result: Plan, target: str, message: str, event: EventSink) -> None:
    status = result.status
    result.canary = None
    result.stable = (status.current_version or target, status.replicas or 0)
    status.rolled_back_version = target
    status.canary_version = None
    status.canary_start_time = None
    event(Reason.CANARY_FAILED, message + "; canary removed", True)
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
    if status.canary_version:
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
