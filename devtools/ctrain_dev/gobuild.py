"""Go builds with progress people can read: packages compiled out of the total.

The sandbox's Kubernetes binaries and the container tooling (kind, containerd, crictl,
coredns, the node's kubelet) are built from pinned Go modules, some for many minutes on a
small machine. `go list -deps` says how many packages a build needs; `go build -v` names
each package as it compiles it, so the share done is a count of lines. With a warm build
cache fewer packages compile than the total, so a build may finish below 100%.
"""

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

Progress = Callable[[str], None]

# Reported shares: a line at each of these percentages, not one per package.
STEPS = (10, 20, 30, 40, 50, 60, 70, 80, 90)


class GoBuildError(RuntimeError):
    """Go is missing, or `go` failed; the message holds the tail of its output."""


def go() -> str:
    found = shutil.which("go")
    if found is None:
        raise GoBuildError("Go is not installed (needed once to build pinned binaries)")
    return found


def count_packages(packages: list[str], cwd: Path, env: dict[str, str]) -> int | None:
    """How many packages `go build` of `packages` compiles from a cold cache (None: unknown)."""
    done = subprocess.run(
        [go(), "list", "-deps", *packages],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    return len([line for line in done.stdout.splitlines() if line.strip()])


def progress_line(label: str, compiled: int, total: int | None) -> str:
    if not total:
        return f"  {label}: {compiled} packages compiled"
    share = min(100, compiled * 100 // total)
    return f"  {label}: {compiled} of {total} packages compiled ({share}%)"


def run(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    label: str,
    total: int | None,
    progress: Progress,
    log: Path,
) -> int:
    """Run a `go build -v`/`go install -v`, reporting progress; return packages compiled.

    The whole output goes to `log`; a failure raises with Go's first error line and the
    log's path, not pages of compiler output.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    errors: list[str] = []
    with log.open("w") as output:
        compiled = _follow(process.stdout, output, label, total, progress, errors)
    if process.wait() != 0:
        first = errors[0] if errors else "see the log"
        raise GoBuildError(f"building {label} failed: {first} (full output: {log})")
    return compiled


def _follow(
    lines: Iterable[str],
    output: TextIO,
    label: str,
    total: int | None,
    progress: Progress,
    errors: list[str],
) -> int:
    """Copy Go's output to the log, count compiled packages, keep error lines."""
    compiled = 0
    steps = list(STEPS)
    for raw in lines:
        output.write(raw)
        line = raw.rstrip()
        if ": " in line and not line.startswith("go: downloading"):
            errors.append(line[:300])
        # `-v` names packages; downloads and compiler diagnostics are other lines.
        if not line or line.startswith(("go: ", "#", " ", "\t")) or ":" in line:
            continue
        compiled += 1
        share = compiled * 100 // total if total else None
        if share is not None and steps and share >= steps[0]:
            while steps and share >= steps[0]:
                steps.pop(0)
            progress(progress_line(label, compiled, total))
        elif share is None and compiled % 100 == 0:
            progress(progress_line(label, compiled, total))
    return compiled


def module_dir(module: str, version: str, env: dict[str, str]) -> Path:
    """Download `module@version` into the module cache; its directory there."""
    done = subprocess.run(
        [go(), "mod", "download", "-json", f"{module}@{version}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError:
        info = {"Error": done.stderr.strip() or "no output"}
    if done.returncode != 0 or "Dir" not in info:
        raise GoBuildError(f"cannot download {module}@{version}: {info.get('Error')}")
    return Path(info["Dir"])


def install(
    module: str,
    version: str,
    packages: list[str],
    out_dir: Path,
    progress: Progress,
    env: dict[str, str] | None = None,
    flags: list[str] | None = None,
) -> None:
    """`go install` the `packages` of `module@version` into `out_dir` (atomically)."""
    build_env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", **(env or {})}
    source = module_dir(module, version, build_env)
    relative = [package.replace(module, ".", 1) for package in packages]
    total = count_packages(relative, source, build_env)
    partial = Path(f"{out_dir}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    progress(f"building {out_dir.name} from {module}@{version} (first time only)")
    argv = [go(), "install", "-v", "-trimpath", *(flags or [])]
    argv += [f"{package}@{version}" for package in packages]
    build_env["GOBIN"] = str(partial)
    run(argv, partial, build_env, out_dir.name, total, progress, Path(f"{out_dir}.log"))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    progress(f"  {out_dir.name}: done")
