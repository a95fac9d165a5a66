"""What a ModelDeployment pass reads from its pods before planning: the canary's window.

A canary is judged on counter deltas over one window: the canary's pods count from their
start (they are new pods); the stable pods from the canary's start, as remembered per pod
in the object's memory. After an operator restart the stable window restarts at the first
pass (a shorter window for stable, never a longer one); a stable pod whose counters went
down restarted and counts from zero again. Every ready pod is scraped; a ready pod that
does not answer is counted as unscraped, which the analysis treats as inconclusive.
"""

import datetime
from typing import Any

from ctrain.api import ModelDeploymentStatus
from ctrain.controller.modeldeployment import probe
from ctrain.controller.modeldeployment.analysis import Counts, latency_p99_ms
from ctrain.controller.modeldeployment.builders import HTTP_PORT, TRACK_LABEL, VERSION_LABEL
from ctrain.controller.runtime.context import Memory
from ctrain.controller.runtime.store import ObjectRef

__all__ = ["MODEL_FAULTS", "STABLE_BASELINE", "canary_window", "model_fault", "unscheduled"]

Body = dict[str, Any]
# Why `ctrain serve` could not load a model (`ctrain_serving_model_load_failures_total`'s
# reason) when the model itself is at fault: a sha256 mismatch or unreadable file, a type
# the allowlist refuses, a model that cannot predict. A missing version or an unreachable
# store is not the model's fault.
MODEL_FAULTS = frozenset({"IntegrityError", "UntrustedModel", "InvalidModel"})
# Per-object memory: (canary version, {stable pod uid: (requests, errors) when first seen}).
STABLE_BASELINE = "canary-stable-baseline"


def _label(pod: Body, key: str) -> str | None:
    value: str | None = (pod["metadata"].get("labels") or {}).get(key)
    return value


def _pods_of(pods: list[Body], track: str, version: str) -> list[Body]:
    return [
        p for p in pods if _label(p, TRACK_LABEL) == track and _label(p, VERSION_LABEL) == version
    ]


def canary_window(
    memory: Memory, ref: ObjectRef, old: ModelDeploymentStatus, pods: list[Body], version: str
) -> tuple[Counts, Counts]:
    """(canary, stable) counts since the canary started; every ready pod is scraped."""
    canary_pods = _pods_of(pods, "canary", version)
    stable_pods = [p for p in pods if _label(p, TRACK_LABEL) == "stable"]
    canary_ips = probe.ready_pod_ips(canary_pods)
    stable_by_ip = {ip: pod for pod in stable_pods for ip in probe.ready_pod_ips([pod])}
    scraped = probe.canary_counts(canary_ips + list(stable_by_ip), HTTP_PORT)
    restarts = sum(
        int(c.get("restartCount") or 0)
        for pod in canary_pods
        for c in (pod.get("status") or {}).get("containerStatuses") or []
    )
    requests = errors = unscraped = 0
    buckets: dict[float, float] = {}
    for ip in canary_ips:
        got = scraped.get(ip)
        if got is None:
            unscraped += 1
            continue
        requests, errors = requests + got.requests, errors + got.errors
        for bound, count in got.latency.items():
            buckets[bound] = buckets.get(bound, 0.0) + count
    canary = Counts(requests, errors, unscraped, restarts, latency_p99_ms(buckets))

    remembered = memory.get(ref, STABLE_BASELINE)
    if not remembered or remembered[0] != version:
        remembered = (version, {})
    baseline: dict[str, tuple[int, int]] = remembered[1]
    started = old.canary_start_time if old.canary_version == version else None
    requests = errors = unscraped = 0
    for ip, pod in stable_by_ip.items():
        got = scraped.get(ip)
        if got is None:
            unscraped += 1
            continue
        uid = pod["metadata"]["uid"]
        if uid not in baseline:
            created = _time(pod["metadata"].get("creationTimestamp"))
            fresh = started is not None and created is not None and created >= started
            baseline[uid] = (0, 0) if fresh else (got.requests, got.errors)
        base_requests, base_errors = baseline[uid]
        if got.requests < base_requests:  # the pod restarted: its counters began again
            baseline[uid] = base_requests, base_errors = (0, 0)
        requests += got.requests - base_requests
        errors += max(0, got.errors - base_errors)
    memory.put(ref, STABLE_BASELINE, remembered)
    return canary, Counts(requests, errors, unscraped)


def _time(text: str | None) -> datetime.datetime | None:
    return datetime.datetime.fromisoformat(text) if text else None


def unscheduled(pods: list[Body]) -> frozenset[str]:
    """Versions with a pod the scheduler could not place (no room: not the model's fault)."""
    return frozenset(
        pod["metadata"]["labels"].get(VERSION_LABEL, "")
        for pod in pods
        if any(
            c.get("type") == "PodScheduled" and c.get("status") == "False"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
    )


def model_fault(pods: list[Body], version: str) -> str | None:
    """Why pods of `version` that are not ready could not load it, when that is the model's
    fault (`MODEL_FAULTS`); None without such evidence. Their servers run and answer
    /metrics while the model fails to load (readiness stays 503)."""
    ips = [
        pod["status"]["podIP"]
        for pod in pods
        if (pod["metadata"].get("labels") or {}).get(VERSION_LABEL) == version
        and (pod.get("status") or {}).get("podIP")
        and not pod["metadata"].get("deletionTimestamp")
    ]
    reasons: set[str] = set()
    for counts in probe.canary_counts(ips, HTTP_PORT).values():
        if counts is not None:
            reasons |= set(counts.load_failures) & MODEL_FAULTS
    return ", ".join(sorted(reasons)) or None
