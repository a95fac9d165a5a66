"""What the sandbox needs from this machine, checked before anything slow starts.

`ctrain dev up` may first build the Kubernetes binaries for 15-25 minutes; finding out
afterwards that it cannot create a bridge wastes all of that. `problems` lists every
missing need at once (Linux, root, `ip`, `nsenter`, Go when a build is due), and
`explain` turns the sandbox's known failures into one line that says what to do, for the
command line to print instead of a traceback.

The checks take the machine's facts as arguments, so the tests need no such machine.
"""

import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MIN_GO = (1, 24)


class SandboxError(RuntimeError):
    """A known reason the sandbox cannot start; the message is one line saying what to do."""


@dataclass(frozen=True)
class Machine:
    """The facts the checks read (defaults: this machine)."""

    platform: str
    euid: int
    which: Callable[[str], str | None]
    go_version: Callable[[], tuple[int, int] | None]


def go_version(go: str | None = None) -> tuple[int, int] | None:
    """The (major, minor) of `go version`, or None when Go is missing or unreadable."""
    go = go or shutil.which("go")
    if not go:
        return None
    try:
        out = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"go(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def this_machine() -> Machine:
    import os
    import sys

    return Machine(sys.platform, os.geteuid(), shutil.which, go_version)


def problems(machine: Machine, needs_build: bool) -> list[str]:
    """Every missing need, each a phrase that says how to fix it (empty: all set)."""
    if machine.platform != "linux":
        return [
            "the sandbox runs on Linux only (a bridge, routes and a node container); "
            "elsewhere use kind: see docs/kind.md"
        ]
    found: list[str] = []
    if machine.euid != 0:
        found.append(
            "it needs root (a bridge, routes, its own Docker engine): run it as root "
            "(e.g. `sudo -E make test`)"
        )
    for tool, package in (("ip", "iproute2"), ("nsenter", "util-linux")):
        if machine.which(tool) is None:
            found.append(f"`{tool}` is missing: install {package}")
    if needs_build:
        version = machine.go_version()
        wanted = ".".join(map(str, MIN_GO))
        if version is None:
            found.append(
                f"Go {wanted} or newer is needed once to build the Kubernetes binaries "
                "(15-25 minutes): install Go, or set KUBEBUILDER_ASSETS to a directory "
                "holding them"
            )
        elif version < MIN_GO:
            have = ".".join(map(str, version))
            found.append(f"Go {have} is too old to build the Kubernetes binaries: need {wanted}+")
    return found


def check(needs_build: bool, machine: Machine | None = None) -> None:
    """Raise SandboxError naming everything missing, before any slow step."""
    found = problems(machine or this_machine(), needs_build)
    if found:
        raise SandboxError("the sandbox cannot start: " + "; ".join(found))


# Known failures in a component's log, and what to say about them.
LOG_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        r"address already in use",
        "{name} could not listen: a port it was given is in use by another process "
        "(picked free moments before); run `ctrain dev up` again",
    ),
    (r"permission denied", "{name} was refused a permission it needs: run the sandbox as root"),
    (r"no space left on device", "{name} ran out of disk space"),
)


def explain_exit(name: str, log: Path) -> str:
    """One line on why `name` exited early, from the known patterns in its log."""
    try:
        tail = log.read_text(errors="replace").strip().splitlines()[-40:]
    except OSError:
        tail = []
    text = "\n".join(tail)
    for pattern, message in LOG_PATTERNS:
        if re.search(pattern, text, re.IGNORECASE):
            return message.format(name=name) + f" (log: {log})"
    last = tail[-1][:200] if tail else "no output"
    return f"{name} exited: {last} (log: {log})"
