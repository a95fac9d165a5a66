"""The trainer's single exception type: a failure with a reason from docs/contracts.md.

Every step raises `TrainerError(reason, message)` for failures it understands; `run`
turns it into the termination message. The reasons are the `Reason` constants shared
with the operator, so the operator can put them into conditions unchanged.
"""

from __future__ import annotations

from ctrain.api import Reason

__all__ = [
    "EXIT_INVALID_DATA",
    "EXIT_INVALID_SPEC",
    "EXIT_RETRYABLE",
    "EXIT_TRAINING",
    "FAILURE_REASONS",
    "TrainerError",
]

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


# Exit codes of `ctrain train` by class of failure (docs/contracts.md). A failure that
# would fail the same way again is not retried: the Job's podFailurePolicy fails the Job
# on 10-12 at once; 1 (storage, or an unforeseen error) is retried up to backoffLimit.
EXIT_RETRYABLE = 1
EXIT_INVALID_SPEC = 10  # InvalidSpec, UnknownEstimator, InvalidParams
EXIT_INVALID_DATA = 11  # DatasetNotFound, DatasetUnreadable, DataValidationFailed
EXIT_TRAINING = 12  # TrainingFailed: the estimator failed on this data with these params

_EXIT_CODES: dict[Reason, int] = {
    Reason.INVALID_SPEC: EXIT_INVALID_SPEC,
    Reason.UNKNOWN_ESTIMATOR: EXIT_INVALID_SPEC,
    Reason.INVALID_PARAMS: EXIT_INVALID_SPEC,
    Reason.DATASET_NOT_FOUND: EXIT_INVALID_DATA,
    Reason.DATASET_UNREADABLE: EXIT_INVALID_DATA,
    Reason.DATA_VALIDATION_FAILED: EXIT_INVALID_DATA,
    Reason.TRAINING_FAILED: EXIT_TRAINING,
    Reason.STORAGE_ERROR: EXIT_RETRYABLE,
}


class TrainerError(Exception):
    """A training run failed for `reason`; `message` says what to fix.

    Raised only for failures the trainer understands, so each maps to one exit code.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        if reason not in FAILURE_REASONS:
            raise ValueError(f"{reason!r} is not a trainer failure reason")
        super().__init__(message)
        self.reason = reason
        self.message = message

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self.reason]
