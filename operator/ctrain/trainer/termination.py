"""The trainer's result as a Kubernetes termination message (docs/contracts.md).

The kubelet keeps at most 4096 bytes of ``/dev/termination-log``; a longer message would
be cut mid-JSON and the operator could not parse it. `encode` therefore shortens the
free-text fields (the comparison's sentence, which the decision repeats, then the message
and the decision, then per-gate detail) until the JSON fits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ctrain.api import Reason
from ctrain.api.contracts import TrainingFailed

__all__ = ["MAX_BYTES", "encode", "failure", "write"]

MAX_BYTES = 4096

log = logging.getLogger(__name__)


def failure(reason: Reason, message: str) -> TrainingFailed:
    """The result of a failed run."""
    return TrainingFailed(reason=reason.value, message=message)


def encode(payload: Mapping[str, Any], limit: int = MAX_BYTES) -> bytes:
    """Compact JSON of ``payload`` (a result's `to_wire()`), shortened to ``limit`` bytes."""
    data = _dump(payload)
    if len(data) <= limit:
        return data
    shortened = dict(payload)
    comparison = shortened.get("comparison")
    if isinstance(comparison, dict) and "reason" in comparison:
        # The decision says the same in words; the numbers are what status needs.
        shortened["comparison"] = {k: v for k, v in comparison.items() if k != "reason"}
    for key in ("message", "decision"):
        text = shortened.get(key)
        if isinstance(text, str):
            excess = len(_dump(shortened)) - limit
            if excess > 0:
                keep = max(0, len(text.encode()) - excess - 16)
                shortened[key] = text.encode()[:keep].decode(errors="ignore") + " …(truncated)"
    if len(_dump(shortened)) > limit and "gates" in shortened:
        gates = shortened.pop("gates")
        shortened["gatesPassed"] = all(gate.get("passed") for gate in gates)
    data = _dump(shortened)
    if len(data) > limit:  # pathological (huge metric names); keep what the operator needs
        minimal: dict[str, Any] = {
            key: payload[key] for key in ("ok", "reason", "version") if key in payload
        }
        minimal["message"] = "termination message too long; see the pod log"
        data = _dump(minimal)
    return data


def write(path: Path, payload: Mapping[str, Any]) -> bool:
    """Write the message; return False (and log why) if the file cannot be written."""
    try:
        path.write_bytes(encode(payload))
    except OSError as exc:
        log.warning("could not write the termination message to %s: %s", path, exc)
        return False
    return True


def _dump(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
