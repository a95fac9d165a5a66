"""The trainer's single exception type: a failure with a reason from docs/contracts.md.

Every step raises `TrainerError(reason, message)` for failures it understands; `run`
turns it into the termination message. The reasons are the `Reason` constants shared
with the operator, so the operator can put them into conditions unchanged.
"""

from __future__ import annotations

from ctrain.api import Reason

__all__ = ["FAILURE_REASONS", "TrainerError"]

# The reasons a failed training run reports (docs/contracts.md, "Trainer → operator").
FAILURE_REASONS: frozenset[Reason] = frozenset(
    {
        Reason.INVALID_SPEC,
        Reason.DATASET_NOT_FOUND,
        Reason.DATASET_UNREADABLE,
        Reason.DATA_VALIDATION_FAILED,
        Reason.UNKNOWN_ESTIMATOR,
        Reason.INVALID_PARAMS,
        Reason.TRAINING_FAILED,
        Reason.STORAGE_ERROR,
    }
)


class TrainerError(Exception):
    """A training run failed for `reason`; `message` says what to fix."""

    def __init__(self, reason: Reason, message: str) -> None:
        if reason not in FAILURE_REASONS:
            raise ValueError(f"{reason!r} is not a trainer failure reason")
        super().__init__(message)
        self.reason = reason
        self.message = message
