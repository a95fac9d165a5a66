"""Canary analysis that fails closed: the verdict on a canary from what its pods reported.

A canary is promoted only on evidence. The analysis reads counter deltas over one window
(since the canary's pods started, and the stable pods' counts since the canary became
ready) and answers, in this order:

    a canary pod restarted ──────────────────────────► Failed (a crash is a failure signal)
    server errors (5xx) above maxErrorRate ──────────► Failed (counted over at least
                                                        minRequests: a few early errors
                                                        already fail a canary that could not
                                                        get under the ceiling by minRequests)
    a ready canary pod could not be scraped ─────────► Inconclusive (never a pass)
    fewer than minRequests inference requests ───────► WaitingForTraffic
    p99 latency unknown, or above maxLatencyP99Ms ───► Inconclusive / Failed
    the stable track could not be read (a pod not
      scraped, no request in the window) ────────────► Inconclusive (no comparison)
    error rate above stable's + STABLE_MARGIN ───────► Failed
    otherwise ───────────────────────────────────────► Healthy
Client errors (4xx) are the client's: they never count against a canary, so no client can
force a rollback. WaitingForTraffic and Inconclusive never promote; `plan` rolls a canary
back when they last past its analysis deadline.
"""

import dataclasses
import math

from ctrain.api import CanarySpec
from ctrain.api.status import CanaryVerdict

__all__ = ["STABLE_MARGIN", "Counts", "Verdict", "judge", "latency_p99_ms"]

# How much worse than the stable track the canary's server-error rate may be: one
# percentage point. The absolute ceiling (maxErrorRate) still applies on its own; the
# margin catches a canary that stays under a loose ceiling while stable serves cleanly.
STABLE_MARGIN = 0.01


@dataclasses.dataclass(frozen=True)
class Counts:
    """One track's pods over the analysis window."""

    requests: int = 0  # inference requests answered
    errors: int = 0  # of those, server errors (5xx)
    unscraped: int = 0  # ready pods whose /metrics could not be read
    restarts: int = 0  # container restarts of the track's pods
    latency_p99_ms: float | None = None  # None: no histogram (or no request)


@dataclasses.dataclass(frozen=True)
class Verdict:
    verdict: CanaryVerdict
    message: str

    @property
    def failed(self) -> bool:
        return self.verdict == CanaryVerdict.FAILED

    @property
    def healthy(self) -> bool:
        return self.verdict == CanaryVerdict.HEALTHY


def _rate(errors: int, requests: int) -> float:
    return errors / requests if requests else 0.0


def latency_p99_ms(buckets: dict[float, float]) -> float | None:
    """The upper bound of the histogram bucket holding the 99th percentile, in ms.

    `buckets` maps a bucket's upper bound in seconds (`le`, +Inf included) to its
    cumulative count. The bound, not an interpolation: a ceiling is judged against the
    worst the histogram allows. None when nothing was observed; +Inf when the 99th
    percentile is beyond the largest finite bucket.
    """
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = math.ceil(0.99 * total)
    for bound in bounds:
        if buckets[bound] >= rank:
            return bound * 1000.0
    return math.inf


def judge(settings: CanarySpec, canary: Counts, stable: Counts) -> Verdict:
    """The canary's verdict (see the module docstring for the order of the rules)."""
    if canary.restarts:
        return Verdict(CanaryVerdict.FAILED, f"canary pods restarted {canary.restarts} time(s)")
    counted = max(canary.requests, settings.min_requests)
    if canary.errors and _rate(canary.errors, counted) > settings.max_error_rate:
        rate = _rate(canary.errors, canary.requests)
        return Verdict(
            CanaryVerdict.FAILED,
            f"{canary.errors} server errors in {canary.requests} requests ({rate:.1%}; "
            f"at most {settings.max_error_rate:.1%} of at least {settings.min_requests})",
        )
    if canary.unscraped:
        return Verdict(
            CanaryVerdict.INCONCLUSIVE,
            f"metrics of {canary.unscraped} ready canary pod(s) could not be read",
        )
    if canary.requests < settings.min_requests:
        return Verdict(
            CanaryVerdict.WAITING_FOR_TRAFFIC,
            f"{canary.requests} of the {settings.min_requests} requests needed",
        )
    ceiling = settings.max_latency_p99_ms
    if ceiling is not None:
        if canary.latency_p99_ms is None:
            return Verdict(CanaryVerdict.INCONCLUSIVE, "no latency histogram from the canary")
        if canary.latency_p99_ms > ceiling:
            return Verdict(
                CanaryVerdict.FAILED,
                f"p99 latency {canary.latency_p99_ms:g} ms above {ceiling:g} ms",
            )
    if stable.unscraped:
        return Verdict(
            CanaryVerdict.INCONCLUSIVE,
            f"metrics of {stable.unscraped} ready stable pod(s) could not be read: "
            "nothing to compare with",
        )
    if not stable.requests:
        return Verdict(
            CanaryVerdict.INCONCLUSIVE,
            "the stable track served no request in the window: nothing to compare with",
        )
    rate, stable_rate = _rate(canary.errors, canary.requests), _rate(stable.errors, stable.requests)
    if rate > stable_rate + STABLE_MARGIN:
        return Verdict(
            CanaryVerdict.FAILED,
            f"{rate:.1%} server errors against the stable track's {stable_rate:.1%} "
            f"(at most {STABLE_MARGIN:.0%} more)",
        )
    return Verdict(
        CanaryVerdict.HEALTHY,
        f"{canary.requests} requests, {rate:.1%} server errors (stable {stable_rate:.1%})",
    )
