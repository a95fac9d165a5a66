"""Pure helpers for metav1.Condition lists: set one, read one, keep transition times honest."""

from datetime import UTC, datetime
from typing import Any

from ctrain.api.common import format_time

__all__ = ["changed_conditions", "get_condition", "now", "set_condition"]


def now() -> str:
    return format_time(datetime.now(UTC))


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: bool | None,
    reason: str,
    message: str = "",
    generation: int | None = None,
    at: str | None = None,
) -> list[dict[str, Any]]:
    """Return a new list with `kind` set; lastTransitionTime moves only when status changes."""
    value = "Unknown" if status is None else ("True" if status else "False")
    result = [dict(c) for c in conditions if c.get("type") != kind]
    previous = next((c for c in conditions if c.get("type") == kind), None)
    transition = at or now()
    if previous is not None and previous.get("status") == value:
        transition = previous.get("lastTransitionTime", transition)
    condition: dict[str, Any] = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": transition,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    result.append(condition)
    return result


def get_condition(conditions: list[dict[str, Any]] | None, kind: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == kind), None)


def changed_conditions(
    before: list[dict[str, Any]] | None, after: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Conditions whose status or reason differ from `before`: the transitions worth an Event."""
    changes = []
    for condition in after:
        old = get_condition(before, condition["type"])
        if old is None or (old.get("status"), old.get("reason")) != (
            condition["status"],
            condition["reason"],
        ):
            changes.append(condition)
    return changes
