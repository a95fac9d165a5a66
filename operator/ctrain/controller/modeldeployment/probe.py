"""Read what the serving pods report: request counts (for canary analysis) and drift.

The operator asks each ready pod directly at its IP (`/metrics`, `/drift`), as Prometheus
would scrape it, so canary decisions need no monitoring stack.

What a pod says decides rollouts, so only pods the deployment's current ReplicaSet
controls are asked (`scrape_ips`): anyone who may create pods in the namespace can give
one the right labels, but a pod claiming a ReplicaSet as its controller is counted by
that ReplicaSet's controller, which deletes the surplus (or releases a pod its selector
does not match). Answers are read with short timeouts and at most `BODY_LIMIT` bytes: a
pod cannot hold a worker or fill the operator's memory.
"""

import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import ValidationError

from ctrain.api.common import format_time
from ctrain.api.contracts import DriftReport
from ctrain.controller.kube import REPLICASETS, Kube

__all__ = [
    "BODY_LIMIT",
    "INFER_ROUTE",
    "TIMEOUT",
    "PodCounts",
    "canary_counts",
    "combine_drift",
    "drift_reports",
    "owned_pods",
    "ready_pod_ips",
    "request_counts",
    "scrape_ips",
]

log = logging.getLogger("ctrain.operator")
# A pod answers these from memory in milliseconds; one that does not is skipped.
TIMEOUT = httpx.Timeout(2.0, connect=1.0)
BODY_LIMIT = 1 << 20  # the largest /metrics or /drift answer read (1 MiB)
INFER_ROUTE = "infer"
REVISION = "deployment.kubernetes.io/revision"


class TooLarge(httpx.HTTPError):
    """A pod's answer exceeded BODY_LIMIT."""


def _controller_uid(body: dict[str, Any]) -> str | None:
    for ref in body["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def scrape_ips(
    kube: Kube, deployment: dict[str, Any] | None, pods: list[dict[str, Any]]
) -> list[str]:
    """IPs of the ready `pods` controlled by `deployment`'s current ReplicaSet (one list
    of ReplicaSets, made only when there is something to scrape)."""
    return ready_pod_ips(owned_pods(kube, deployment, [p for p in pods if ready_pod_ips([p])]))


def owned_pods(
    kube: Kube, deployment: dict[str, Any] | None, pods: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The `pods` controlled by `deployment`'s current ReplicaSet (ready or not)."""
    if deployment is None or not pods:
        return []
    metadata = deployment["metadata"]
    labels = (deployment["spec"].get("selector") or {}).get("matchLabels") or {}
    selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
    revision = (metadata.get("annotations") or {}).get(REVISION)
    current = {
        rs["metadata"]["uid"]
        for rs in kube.list(REPLICASETS, metadata["namespace"], labels=selector or None)
        if _controller_uid(rs) == metadata["uid"]
        and (rs["metadata"].get("annotations") or {}).get(REVISION) == revision
    }
    return [pod for pod in pods if _controller_uid(pod) in current]


def _get(client: httpx.Client, url: str) -> bytes:
    """The body of a 2xx answer, read up to BODY_LIMIT bytes (more raises TooLarge)."""
    with client.stream("GET", url) as response:
        response.raise_for_status()
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > BODY_LIMIT:
                raise TooLarge(f"{url}: answer larger than {BODY_LIMIT} bytes")
        return bytes(body)


def ready_pod_ips(pods: list[dict[str, Any]]) -> list[str]:
    ips = []
    for pod in pods:
        status = pod.get("status") or {}
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if ready and status.get("podIP") and not pod["metadata"].get("deletionTimestamp"):
            ips.append(status["podIP"])
    return ips


@dataclasses.dataclass(frozen=True)
class PodCounts:
    """What one serving pod's counters say since it started."""

    requests: int = 0  # inference requests answered, but for client errors (4xx)
    errors: int = 0  # of those, server errors (5xx)
    latency: dict[float, float] = dataclasses.field(default_factory=dict)  # le (s): cumulative
    load_failures: dict[str, float] = dataclasses.field(default_factory=dict)  # by reason


def request_counts(metrics_text: str) -> PodCounts:
    """Inference requests, server errors and the latency histogram from /metrics text.

    A client error (4xx) counts neither way: a client cannot fail a canary with bad
    requests, nor make it look tried with them.
    """
    total = failed = 0
    latency: dict[float, float] = {}
    failures: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "ctrain_serving_model_load_failures_total" and sample.value > 0:
                reason = str(sample.labels.get("reason", ""))
                failures[reason] = failures.get(reason, 0.0) + sample.value
            if sample.labels.get("route") != INFER_ROUTE:
                continue
            if sample.name == "ctrain_serving_requests_total":
                code = str(sample.labels.get("code", ""))
                if code.startswith("4"):
                    continue  # the client's mistake: neither evidence for nor against the model
                count = int(sample.value)
                total += count
                if code.startswith("5"):
                    failed += count
            elif sample.name == "ctrain_serving_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                latency[bound] = latency.get(bound, 0.0) + sample.value
    return PodCounts(total, failed, latency, failures)


def canary_counts(ips: list[str], port: int) -> dict[str, PodCounts | None]:
    """Each pod's counts by IP; None for a pod whose metrics could not be read."""
    counts: dict[str, PodCounts | None] = {}
    with httpx.Client(timeout=TIMEOUT) as client:
        for ip in ips:
            try:
                text = _get(client, f"http://{ip}:{port}/metrics").decode(errors="replace")
                counts[ip] = request_counts(text)
            except (httpx.HTTPError, ValueError) as error:  # unreachable, too large, not Prometheus
                log.info("serving pod %s: metrics unavailable (%s)", ip, error)
                counts[ip] = None
    return counts


def combine_drift(
    reports: Sequence[DriftReport], threshold: float, min_samples: int
) -> dict[str, Any]:
    """One drift status from every pod's /drift: sample-weighted scores, summed samples."""
    samples = sum(r.samples for r in reports)
    scored = [(r, r.score) for r in reports if r.score is not None and r.samples]
    weight = sum(r.samples for r, _ in scored)
    score = sum(value * r.samples for r, value in scored) / weight if weight else None
    features: dict[str, float] = {}
    for name in sorted({n for r, _ in scored for n in r.features}):
        values = [
            (value, r.samples) for r, _ in scored if (value := r.features.get(name)) is not None
        ]
        total = sum(n for _, n in values)
        if total:
            features[name] = round(sum(v * n for v, n in values) / total, 6)
    return {
        "score": None if score is None else round(score, 6),
        "detected": bool(score is not None and samples >= min_samples and score > threshold),
        "samples": samples,
        "features": features,
        "checkedAt": format_time(datetime.now(UTC)),
    }


def drift_reports(ips: list[str], port: int) -> list[DriftReport]:
    reports = []
    with httpx.Client(timeout=TIMEOUT) as client:
        for ip in ips:
            try:
                reports.append(DriftReport.parse_json(_get(client, f"http://{ip}:{port}/drift")))
            except (httpx.HTTPError, ValidationError) as error:
                log.info("serving pod %s: drift unavailable (%s)", ip, error)
    return reports
