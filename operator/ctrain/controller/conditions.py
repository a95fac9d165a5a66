"""Pure helpers for lists of `Condition` models: set one, read one, keep transition times honest."""

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from ctrain.api import Condition, ConditionStatus

__all__ = ["changed_conditions", "get_condition", "is_true", "safe_reason", "set_condition"]

MESSAGE_LIMIT = 32768  # metav1.Condition's
_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")  # metav1.Condition's


def safe_reason(reason: str | None, fallback: str) -> str:
    """`reason` if it is a valid condition reason (a process may report anything), else
    `fallback`."""
    return reason if reason and len(reason) <= 1024 and _REASON.match(reason) else fallback


def set_condition(
    conditions: Sequence[Condition],
    kind: str,
    status: bool | None,
    reason: str,
    message: str = "",
    generation: int | None = None,
    at: datetime | None = None,
) -> list[Condition]:
    """A new list with `kind` set; lastTransitionTime moves only when the status changes."""
    value = (
        ConditionStatus.UNKNOWN
        if status is None
        else (ConditionStatus.TRUE if status else ConditionStatus.FALSE)
    )
    previous = get_condition(conditions, kind)
    transition = at or datetime.now(UTC)
    if previous is not None and previous.status == value:
        transition = previous.last_transition_time
    condition = Condition(
        type=kind,
        status=value,
        reason=reason,
        message=message[:MESSAGE_LIMIT],
        last_transition_time=transition,
        observed_generation=generation,
    )
    return [*(c for c in conditions if c.type != kind), condition]


def get_condition(conditions: Sequence[Condition] | None, kind: str) -> Condition | None:
    return next((c for c in conditions or () if c.type == kind), None)


def is_true(conditions: Sequence[Condition] | None, kind: str) -> bool:
    found = get_condition(conditions, kind)
    return found is not None and found.status == ConditionStatus.TRUE


def changed_conditions(
    before: Sequence[Condition] | None, after: Sequence[Condition]
) -> list[Condition]:
    """Conditions whose status or reason differ from `before`: the transitions worth an Event."""
    changes = []
    for condition in after:
        old = get_condition(before, condition.type)
        if old is None or (old.status, old.reason) != (condition.status, condition.reason):
            changes.append(condition)
    return changes
