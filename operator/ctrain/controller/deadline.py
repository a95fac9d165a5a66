"""The deadline of the reconcile pass running in this thread, for every call that can block.

A worker sets it when a pass starts; the API wrapper and the storage access shorten their
timeouts to what is left of it and refuse to start a call once it has passed, so one slow
object holds a worker for a bounded time and never forever. Outside a pass (startup, the
tests of a builder) there is no deadline and calls use their own timeouts.
"""

import contextlib
import contextvars
import time
from collections.abc import Iterator

__all__ = ["DeadlineExceeded", "remaining", "running_until", "timeout"]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)


class DeadlineExceeded(TimeoutError):
    """The pass ran out of time; it is retried later, like any transient failure."""


@contextlib.contextmanager
def running_until(seconds: float) -> Iterator[None]:
    """Run the block with a deadline `seconds` from now (monotonic)."""
    token = _DEADLINE.set(time.monotonic() + seconds)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left in this pass, or None outside a pass."""
    deadline = _DEADLINE.get()
    return None if deadline is None else deadline - time.monotonic()


def timeout(default: float, what: str) -> float:
    """`default`, cut to what is left of the pass; raises once nothing is left."""
    left = remaining()
    if left is None:
        return default
    if left <= 0:
        raise DeadlineExceeded(f"the reconcile pass ran out of time before {what}")
    return min(default, left)
