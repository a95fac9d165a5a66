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
"""

import dataclasses
import datetime
from typing import Any

from ctrain.api import ConditionType, ModelDeploymentPhase, ModelDeploymentSpec, Reason
from ctrain.api.common import format_time
from ctrain.controller.conditions import set_condition

__all__ = ["Observed", "Plan", "Track", "canary_replicas", "effective_weight", "plan"]


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
    stable: tuple[str, int] | None = None  # (version, replicas) the stable Deployment should have
    canary: tuple[str, int] | None = None  # None: no canary Deployment
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    events: list[tuple[str, str, bool]] = dataclasses.field(
        default_factory=list
    )  # reason, msg, warn


def _elapsed(since: str | None, now: datetime.datetime) -> float:
    if not since:
        return 0.0
    start = datetime.datetime.fromisoformat(since)  # written by format_time: aware, UTC
    return (now - start).total_seconds()


def plan(spec: ModelDeploymentSpec, old: dict[str, Any], seen: Observed, generation: int) -> Plan:
    result = Plan(status={**old, "observedGeneration": generation, "replicas": spec.replicas})
    status, now = result.status, seen.now
    current = old.get("currentVersion")

    def event(reason: str, message: str, warning: bool = False) -> None:
        result.events.append((reason, message, warning))

    target = seen.desired
    held = bool(target and target == old.get("rolledBackVersion") and current)
    if held:
        target = current
    if target is None:
        if seen.stable is None:
            _summarise(result, spec, seen, message=seen.resolve_error or "no version to serve")
            return result
        target = seen.stable.version
    if seen.desired and seen.desired != old.get("rolledBackVersion"):
        status.pop("rolledBackVersion", None)

    if seen.stable is None:
        result.stable = (target, spec.replicas)
        status["rolloutStartTime"] = format_time(now)
        event(Reason.ROLLING_OUT, f"deploying version {target}")
        _summarise(result, spec, seen, message=f"deploying version {target}")
        return result

    canary = spec.strategy.type == "Canary" and current and target != current
    if canary and seen.stable.version == current:
        _canary(result, spec, seen, current, target, event)
        return result

    if seen.stable.version != target:
        result.stable = (target, spec.replicas)
        if current and current != target:
            status["previousVersion"] = current
        status["rolloutStartTime"] = format_time(now)
        event(Reason.ROLLING_OUT, f"rolling out version {target} (serving {current or 'none'})")
        _summarise(result, spec, seen, message=f"rolling out version {target}")
        return result

    result.stable = (target, spec.replicas)
    if seen.stable.complete:
        if current != target:
            event(Reason.ROLLOUT_COMPLETE, f"version {target} is serving")
        status["currentVersion"] = target
        status.pop("canaryVersion", None)
        status.pop("canaryStartTime", None)
        result.canary = None
    elif seen.stable.deadline_exceeded:
        previous = old.get("previousVersion")
        if previous and previous != target:
            status["rolledBackVersion"] = target
            result.stable = (previous, spec.replicas)
            status["rolloutStartTime"] = format_time(now)
            event(
                Reason.ROLLED_BACK,
                f"version {target} did not become ready within "
                f"{spec.progress_deadline_seconds}s; rolled back to {previous}",
                True,
            )
        else:
            status["rolledBackVersion"] = target
    elif seen.canary is not None:
        result.canary = (seen.canary.version, seen.canary.replicas)  # keep it until promoted
    _summarise(result, spec, seen)
    return result


def _canary(
    result: Plan, spec: ModelDeploymentSpec, seen: Observed, current: str, target: str, event: Any
) -> None:
    status, now = result.status, seen.now
    settings = spec.strategy.canary_settings
    stable_pods, canary_pods = canary_replicas(spec.replicas, settings.weight)
    result.stable = (current, stable_pods)
    result.canary = (target, canary_pods)
    if status.get("canaryVersion") != target:
        status.update(canaryVersion=target, rolloutStartTime=format_time(now))
        status.pop("canaryStartTime", None)
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
        if _elapsed(status.get("rolloutStartTime"), now) > spec.progress_deadline_seconds:
            _abort(
                result,
                target,
                f"canary of version {target} did not become ready within "
                f"{spec.progress_deadline_seconds}s",
                event,
            )
            return
        _summarise(result, spec, seen, message=f"waiting for the canary of version {target}")
        return
    if not status.get("canaryStartTime"):
        status["canaryStartTime"] = format_time(now)
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
    if _elapsed(status.get("canaryStartTime"), now) >= settings.promote_after_seconds:
        result.stable = (target, spec.replicas)
        status["previousVersion"] = current
        event(
            Reason.CANARY_PROMOTED,
            f"canary of version {target} promoted after "
            f"{seen.canary_requests} requests with {rate:.1%} errors",
        )
        _summarise(result, spec, seen, message=f"promoting version {target}")
        return
    _summarise(
        result,
        spec,
        seen,
        message=f"canary of version {target}: {seen.canary_requests} requests, {rate:.1%} errors",
    )


def _abort(result: Plan, target: str, message: str, event: Any) -> None:
    status = result.status
    result.canary = None
    result.stable = (status["currentVersion"], result.status["replicas"])
    status["rolledBackVersion"] = target
    status.pop("canaryVersion", None)
    status.pop("canaryStartTime", None)
    event(Reason.CANARY_FAILED, message + "; canary removed", True)
    status["message"] = message


def _summarise(result: Plan, spec: ModelDeploymentSpec, seen: Observed, message: str = "") -> None:
    """Phase, conditions, replica counts and the message from the decisions above."""
    status = result.status
    generation = status.get("observedGeneration")
    conditions = list(status.get("conditions") or [])
    ready_pods = (seen.stable.ready if seen.stable else 0) + (
        seen.canary.ready if seen.canary else 0
    )
    status["readyReplicas"] = ready_pods
    current = status.get("currentVersion")
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
    rolled_back = status.get("rolledBackVersion")
    degraded = bool(rolled_back) and rolled_back == seen.desired
    if seen.resolve_error and not current:
        degraded = False
    if degraded:
        phase = ModelDeploymentPhase.DEGRADED
        text = status.get("message") if "canary" in (status.get("message") or "") else ""
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
    status["phase"] = phase
    status["message"] = message
    ready_reason = Reason.ROLLOUT_COMPLETE if serving else Reason.REPLICAS_UNAVAILABLE
    conditions = set_condition(
        conditions,
        ConditionType.READY,
        serving and phase != "Pending",
        ready_reason,
        message,
        generation,
    )
    conditions = set_condition(
        conditions,
        ConditionType.PROGRESSING,
        phase == ModelDeploymentPhase.PROGRESSING,
        Reason.CANARY_IN_PROGRESS
        if status.get("canaryVersion")
        else Reason.ROLLING_OUT
        if phase == ModelDeploymentPhase.PROGRESSING
        else Reason.ROLLOUT_COMPLETE,
        message,
        generation,
    )
    degraded_reason = Reason.VERSION_NOT_FOUND if seen.resolve_error else Reason.ROLLED_BACK
    conditions = set_condition(
        conditions,
        ConditionType.DEGRADED,
        degraded or bool(seen.resolve_error and not current),
        degraded_reason,
        message if degraded or seen.resolve_error else "",
        generation,
    )
    status["conditions"] = conditions
