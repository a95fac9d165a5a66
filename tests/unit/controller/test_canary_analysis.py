"""Canary analysis that fails closed: verdicts from counts (pure)."""

import math

import pytest

from ctrain.api import CanarySpec
from ctrain.api.status import CanaryVerdict
from ctrain.controller.modeldeployment.analysis import (
    STABLE_MARGIN,
    Counts,
    judge,
    latency_p99_ms,
)

pytestmark = pytest.mark.unit

SETTINGS = CanarySpec.parse({"minRequests": 100, "maxErrorRate": 0.05})
STABLE = Counts(requests=1000, errors=0)


@pytest.mark.parametrize(
    ("canary", "stable", "verdict", "words"),
    [
        pytest.param(Counts(), STABLE, CanaryVerdict.WAITING_FOR_TRAFFIC, "0 of the 100",
                     id="no-traffic"),
        pytest.param(Counts(99), STABLE, CanaryVerdict.WAITING_FOR_TRAFFIC, "99 of the 100",
                     id="almost-enough"),
        pytest.param(Counts(100), STABLE, CanaryVerdict.HEALTHY, "100 requests", id="enough"),
        pytest.param(Counts(100, 5), Counts(1000, 40), CanaryVerdict.HEALTHY, "5.0%",
                     id="at-the-ceiling-and-as-bad-as-stable"),
        pytest.param(Counts(100, 6), STABLE, CanaryVerdict.FAILED, "6 server errors",
                     id="above-the-ceiling"),
        # 6 errors in the first 10 requests: 6 of at least 100 is already above 5%.
        pytest.param(Counts(10, 6), STABLE, CanaryVerdict.FAILED, "at least 100",
                     id="fails-fast-before-min-requests"),
        # 2 errors in 10: the canary may still end under the ceiling, so it waits.
        pytest.param(Counts(10, 2), STABLE, CanaryVerdict.WAITING_FOR_TRAFFIC, "10 of the",
                     id="few-early-errors-wait"),
        pytest.param(Counts(500, 0, restarts=1), STABLE, CanaryVerdict.FAILED, "restarted",
                     id="restart-is-a-failure"),
        pytest.param(Counts(500, 0, unscraped=1), STABLE, CanaryVerdict.INCONCLUSIVE,
                     "could not be read", id="unscraped-canary"),
        pytest.param(Counts(500), Counts(0, 0, unscraped=1), CanaryVerdict.INCONCLUSIVE,
                     "stable pod", id="unscraped-stable"),
        pytest.param(Counts(500), Counts(0), CanaryVerdict.INCONCLUSIVE, "no request",
                     id="stable-without-traffic"),
        pytest.param(Counts(1000, 30), Counts(1000, 0), CanaryVerdict.FAILED,
                     "against the stable track", id="worse-than-stable"),
        pytest.param(Counts(1000, 30), Counts(1000, 25), CanaryVerdict.HEALTHY, "stable 2.5%",
                     id="as-bad-as-stable"),
    ],
)  # fmt: skip
def test_verdicts(canary: Counts, stable: Counts, verdict: CanaryVerdict, words: str) -> None:
    result = judge(SETTINGS, canary, stable)
    assert result.verdict == verdict
    assert words in result.message


def test_client_errors_are_never_counted_so_only_server_errors_can_fail_a_canary() -> None:
    # Counts hold server errors only (`probe.request_counts` leaves 4xx out): a canary whose
    # every answer was a 400 has errors=0 and is judged on its own merits.
    assert judge(SETTINGS, Counts(1000, 0), STABLE).verdict == CanaryVerdict.HEALTHY


def test_the_stable_margin_is_one_percentage_point() -> None:
    loose = CanarySpec.parse({"minRequests": 100, "maxErrorRate": 0.5})
    at_margin = Counts(1000, int(1000 * STABLE_MARGIN))
    assert judge(loose, at_margin, Counts(1000, 0)).verdict == CanaryVerdict.HEALTHY
    over = Counts(1000, int(1000 * STABLE_MARGIN) + 1)
    assert judge(loose, over, Counts(1000, 0)).verdict == CanaryVerdict.FAILED


@pytest.mark.parametrize(
    ("latency", "verdict"),
    [(None, CanaryVerdict.INCONCLUSIVE), (50.0, CanaryVerdict.HEALTHY),
     (100.0, CanaryVerdict.FAILED)],
)  # fmt: skip
def test_latency_ceiling(latency: float | None, verdict: CanaryVerdict) -> None:
    settings = CanarySpec.parse({"minRequests": 10, "maxLatencyP99Ms": 50})
    assert judge(settings, Counts(10, latency_p99_ms=latency), STABLE).verdict == verdict


@pytest.mark.parametrize(
    ("buckets", "p99"),
    [
        ({}, None),
        ({0.005: 0.0, math.inf: 0.0}, None),
        ({0.005: 99.0, 0.01: 100.0, math.inf: 100.0}, 5.0),
        ({0.005: 98.0, 0.01: 100.0, math.inf: 100.0}, 10.0),
        ({0.005: 10.0, 0.01: 50.0, math.inf: 100.0}, math.inf),
    ],
)
def test_latency_p99_is_the_bound_of_the_bucket_holding_it(
    buckets: dict[float, float], p99: float | None
) -> None:
    assert latency_p99_ms(buckets) == p99
