"""Whether live performance is degraded: a pure decision that fails closed.

The operator sets the ModelDeployment's `PerformanceDegraded` condition from it. Like
Argo Rollouts' analysis, missing evidence is never read as a pass or a failure: with
fewer than `minSamples` labelled predictions, or no value at all, the answer is Unknown
(`NotEnoughLabels`), and a check that could not run is Unknown (`PerformanceCheckFailed`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ctrain.api import ConditionStatus, Reason, higher_is_better

__all__ = ["Judgement", "judge", "not_measured"]


@dataclass(frozen=True)
class Judgement:
    """The PerformanceDegraded condition's status, reason and message."""

    status: ConditionStatus
    reason: Reason
    message: str

    @property
    def degraded(self) -> bool | None:
        """True or False when judged; None when the evidence does not allow it."""
        if self.status is ConditionStatus.UNKNOWN:
            return None
        return self.status is ConditionStatus.TRUE


def judge(
    *,
    metric: str,
    value: float | None,
    labelled: int,
    threshold: float,
    min_samples: int,
    version: str,
) -> Judgement:
    """Degraded when `value` is worse than `threshold` in the metric's direction (below it
    for scores like accuracy, above it for errors like rmse), judged on enough labels."""
    if value is None or labelled < min_samples:
        return Judgement(
            ConditionStatus.UNKNOWN,
            Reason.NOT_ENOUGH_LABELS,
            f"v{version}: {labelled} labelled predictions in the window, {min_samples} "
            "needed to judge (upload labels under <prefix>/<model>/labels/)",
        )
    higher = higher_is_better(metric)
    worse = value < threshold if higher else value > threshold
    bound = "at least" if higher else "at most"
    described = f"v{version}: {metric} {value:.4f} on {labelled} labelled predictions"
    if worse:
        return Judgement(
            ConditionStatus.TRUE,
            Reason.WORSE_THAN_THRESHOLD,
            f"{described}, must be {bound} {threshold:g}",
        )
    return Judgement(
        ConditionStatus.FALSE,
        Reason.WITHIN_THRESHOLD,
        f"{described} ({bound} {threshold:g} required)",
    )


def not_measured(reason: Reason, message: str) -> Judgement:
    """Unknown: the check has not run yet, or it failed (never a pass, never a failure)."""
    return Judgement(ConditionStatus.UNKNOWN, reason, message)
