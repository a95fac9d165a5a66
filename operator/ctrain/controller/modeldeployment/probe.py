"""Read what the serving pods report: request counts (for canary analysis) and drift.

The operator asks each ready pod directly at its IP (`/metrics`, `/drift`), as Prometheus
would scrape it, so canary decisions need no monitoring stack.
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

__all__ = [
    "INFER_ROUTE",
    "TIMEOUT",
    "PodCounts",
    "canary_counts",
    "combine_drift",
    "drift_reports",
    "ready_pod_ips",
    "request_counts",
]

log = logging.getLogger("ctrain.operator")
TIMEOUT = httpx.Timeout(3.0)
INFER_ROUTE = "infer"


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
                response = client.get(f"http://{ip}:{port}/metrics")
                response.raise_for_status()
                counts[ip] = request_counts(response.text)
            except (httpx.HTTPError, ValueError) as error:  # unreachable, or not Prometheus text
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
                response = client.get(f"http://{ip}:{port}/drift")
                response.raise_for_status()
                reports.append(DriftReport.parse_json(response.content))
            except (httpx.HTTPError, ValidationError) as error:
                log.info("serving pod %s: drift unavailable (%s)", ip, error)
    return reports
