"""Python packages for image builds whose containers cannot reach the package index.

The project's own engine gives containers no NAT (see `engine.dockerd_argv`), so a `pip
install` inside `docker build` reaches nothing. The host can reach the index: it builds a
wheel of every pinned requirement once (`pip wheel`, so pure-Python source releases become
wheels too), keyed by the requirements and this interpreter's tags, and serves them to the
build as a package index on 127.0.0.1 (the build runs with the host's network). pip checks
each file against the sha256 in the index page, as with any index.

The host interpreter is CPython 3.11 on glibc Linux like the images' bookworm base, so
the wheels it picks install there.
"""

import contextlib
import hashlib
import html
import http.server
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import threading
import tomllib
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from ctrain_dev.containers.engine import cache_dir
from ctrain_dev.containers.errors import BuildError

Say = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def project_requirements(pyproject: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """The build backend and the pinned dependencies (plus `extras`) of a pyproject.toml."""
    with pyproject.open("rb") as handle:
        data = tomllib.load(handle)
    requirements = list(data.get("build-system", {}).get("requires", []))
    requirements += data["project"].get("dependencies", [])
    for extra in extras:
        requirements += data["project"]["optional-dependencies"][extra]
    return sorted(set(requirements))


def normalize(name: str) -> str:
    """A project name as PEP 503 spells it in index URLs."""
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_project(filename: str) -> str:
    """The normalized project name of a wheel file (`name-version-...whl`)."""
    return normalize(filename.split("-", 1)[0])


def house_dir(requirements: list[str]) -> Path:
    tags = f"{sys.implementation.cache_tag}-{sysconfig.get_platform()}"
    digest = hashlib.sha256("\n".join([tags, *requirements]).encode()).hexdigest()[:12]
    return cache_dir() / "wheels" / f"{tags}-{digest}"


def wheelhouse(requirements: list[str], say: Say = _stderr) -> Path:
    """A directory of wheels for `requirements` and their dependencies (built once)."""
    target = house_dir(requirements)
    if (target / "simple").is_dir():
        return target
    partial_dir = Path(f"{target}.partial")
    shutil.rmtree(partial_dir, ignore_errors=True)
    (partial_dir / "files").mkdir(parents=True)
    say(f"downloading {len(requirements)} pinned requirements as wheels (first time only)")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--wheel-dir",
            str(partial_dir / "files"),
            *requirements,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_FIND_LINKS": ""},
        check=False,
    )
    if done.returncode != 0:
        raise BuildError(f"pip wheel failed: {(done.stdout + done.stderr).strip()[-800:]}")
    write_index(partial_dir)
    if target.exists():
        shutil.rmtree(target)
    partial_dir.rename(target)
    return target


def write_index(house: Path) -> None:
    """A PEP 503 simple index (`simple/<project>/index.html`) over `files/*.whl`."""
    projects: dict[str, list[Path]] = {}
    for wheel in sorted((house / "files").glob("*.whl")):
        projects.setdefault(wheel_project(wheel.name), []).append(wheel)
    root = house / "simple"
    root.mkdir(exist_ok=True)
    links = []
    for project, files in sorted(projects.items()):
        (root / project).mkdir(exist_ok=True)
        anchors = []
        for wheel in files:
            digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
            href = f"../../files/{wheel.name}#sha256={digest}"
            anchors.append(f'<a href="{html.escape(href)}">{html.escape(wheel.name)}</a><br>')
        page = "<!DOCTYPE html>\n<html><body>\n" + "\n".join(anchors) + "\n</body></html>\n"
        (root / project / "index.html").write_text(page)
        links.append(f'<a href="{project}/">{project}</a><br>')
    (root / "index.html").write_text(
        "<!DOCTYPE html>\n<html><body>\n" + "\n".join(links) + "\n</body></html>\n"
    )


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return


def preferred_port(house: Path) -> int:
    """A port derived from the wheelhouse: the same index URL on every build.

    The URL is a build argument, and Docker's build cache keys every later step on the
    build arguments: a new port each time would reinstall every package on every build.
    """
    return 20000 + int(hashlib.sha256(house.name.encode()).hexdigest(), 16) % 30000


@contextlib.contextmanager
def serve(house: Path) -> Iterator[str]:
    """The index URL of `house`, served on 127.0.0.1 while the context is open."""
    handler = partial(_Quiet, directory=str(house))
    server = None
    start = preferred_port(house)
    # Taken (say, by a concurrent build): the next ports, at worst any (a cache miss).
    for port in [*range(start, start + 10), 0]:
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
            break
        except OSError:
            continue
    assert server is not None  # port 0 always binds
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple/"
    finally:
        server.shutdown()
        server.server_close()
