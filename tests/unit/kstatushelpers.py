"""kstatus' verdict on objects, as Flux and cli-utils compute it.

`kstatus` is a small command built from kstatus' own library (gomod-kstatus in
ctrain_dev.containers, cached under ~/.cache/ctrain/bin/kstatus-<version>). The rules it
documents for a kind it has no special rules for are transcribed here too, and every
verdict from the command is checked against them, so a change of either shows.
"""

import json
import subprocess
from typing import Any

from ctrain_dev.containers import tools

__all__ = ["built", "documented", "ensure", "verdicts"]


def documented(obj: dict[str, Any]) -> str:
    """kstatus' rules for a resource it has no special rules for (pkg/kstatus/README.md)."""
    if obj["metadata"].get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    if observed is not None and observed != obj["metadata"].get("generation"):
        return "InProgress"
    for condition in status.get("conditions") or []:
        if condition["type"] == "Reconciling" and condition["status"] == "True":
            return "InProgress"
        if condition["type"] == "Stalled" and condition["status"] == "True":
            return "Failed"
    for condition in status.get("conditions") or []:
        if condition["type"] == "Ready":
            return "Current" if condition["status"] == "True" else "InProgress"
    return "Current"


def built() -> str | None:
    """The command if it is in the cache (unit tests never build it)."""
    path = tools.kstatus_dir() / "kstatus"
    return str(path) if path.is_file() else None


def ensure() -> str:
    """The command, built from the Go module proxy the first time."""
    return str(tools.ensure_kstatus())


def verdicts(objects: list[dict[str, Any]], binary: str | None) -> list[str]:
    """kstatus' own verdicts (checked against the documented rules); the documented ones
    alone when `binary` is None."""
    expected = [documented(o) for o in objects]
    if binary is None:
        return expected
    done = subprocess.run(
        [binary],
        input=json.dumps({"kind": "List", "items": objects}),
        capture_output=True,
        text=True,
        check=True,
    )
    computed = [json.loads(line)["status"] for line in done.stdout.splitlines()]
    assert computed == expected, f"kstatus says {computed}, its documented rules {expected}"
    return computed
