"""`make image`: build the Dockerfile here and on a user's laptop alike.

On a laptop the user's Docker pulls the default base (`python:3.11-slim-bookworm`) and pip
inside the build reaches the package index: a plain `docker build`. Where the base cannot
be pulled, an equivalent is made locally (`baseimage.python_base`); where the build's
containers have no route out (the project's own engine, see `engine.dockerd_argv`), the
pinned packages come as wheels downloaded on the host (`wheels`). The Dockerfile is the
same in every case: `BASE_IMAGE` and `PACKAGE_INDEX` are its build arguments.
"""

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ctrain_dev.containers import baseimage, engine, wheels
from ctrain_dev.containers.errors import BuildError

Say = Callable[[str], None]

DEFAULT_BASE = "python:3.11-slim-bookworm"
DEFAULT_TAG = "ctrain:dev"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Plan:
    """How one image build gets its base and its Python packages."""

    base: str
    host_wheels: bool  # serve wheels from the host (True) or let pip reach the index


def docker_build_argv(
    context: Path, tag: str, base: str, index: str | None, dockerfile: str | None = None
) -> list[str]:
    """The `docker build` command line for a plan (pure, for the tests)."""
    argv = ["docker", "build", "--tag", tag, "--build-arg", f"BASE_IMAGE={base}"]
    if index:
        # The index listens on the host's loopback: the build must share the host's network.
        argv += ["--network=host", "--build-arg", f"PACKAGE_INDEX={index}"]
    if dockerfile:
        argv += ["--file", dockerfile]
    return [*argv, str(context)]


def plan(found: engine.Engine, base: str | None, say: Say = _stderr) -> Plan:
    """Choose the base and the package source for `found` (see the module docstring)."""
    packages = os.environ.get("CTRAIN_IMAGE_PACKAGES", "")
    host_wheels = packages == "host" or (found.owned and packages != "index")
    if base:
        return Plan(base, host_wheels)
    if baseimage.pullable(found, DEFAULT_BASE, say):
        return Plan(DEFAULT_BASE, host_wheels)
    return Plan(baseimage.python_base(found, say), host_wheels)


@contextlib.contextmanager
def package_index(
    host_wheels: bool, requirements: list[str], say: Say = _stderr
) -> Iterator[str | None]:
    """A local index URL serving `requirements` as wheels, or None (pip uses its own)."""
    if not host_wheels:
        yield None
        return
    with wheels.serve(wheels.wheelhouse(requirements, say)) as url:
        yield url


def build(
    root: Path,
    tag: str = DEFAULT_TAG,
    base: str | None = None,
    say: Say = _stderr,
) -> str:
    """Build the Dockerfile in `root` as `tag`; return the tag."""
    found = engine.find(say)
    chosen = plan(found, base, say)
    requirements = wheels.project_requirements(root / "pyproject.toml")
    started = time.monotonic()
    with package_index(chosen.host_wheels, requirements, say) as index:
        say(f"building {tag} from {chosen.base}")
        run_build(found, docker_build_argv(root, tag, chosen.base, index))
    say(f"built {tag} in {time.monotonic() - started:.0f}s")
    return tag


# The model registry's S3 API for the image and kind tests: moto's server (the sandbox's
# pin, from devtools/pyproject.toml) in a virtualenv on the same base as the ctrain image.
S3_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG PACKAGE_INDEX=
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/moto \\
    && /opt/moto/bin/pip install ${PACKAGE_INDEX:+--index-url "$PACKAGE_INDEX"} '{moto}'
USER 65532:65532
ENTRYPOINT ["/opt/moto/bin/python", "-m", "moto.server", "--host", "0.0.0.0"]
CMD ["--port", "5000"]
"""


def moto_requirement(root: Path) -> str:
    pins = wheels.project_requirements(root / "devtools" / "pyproject.toml")
    return next(pin for pin in pins if pin.startswith("moto"))


def s3_tag(image: str) -> str:
    """`<repository>-s3:<tag>` for an image `<repository>:<tag>`."""
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:  # no tag, or a registry port only
        return f"{image}-s3"
    return f"{repository}-s3:{tag}"


def build_s3(root: Path, image: str, base: str | None = None, say: Say = _stderr) -> str:
    """Build `s3_tag(image)`: moto's server on the ctrain image's base (for tests only)."""
    found = engine.find(say)
    tag = s3_tag(image)
    moto = moto_requirement(root)
    chosen = plan(found, base, say)
    with package_index(chosen.host_wheels, [moto], say) as index:
        argv = docker_build_argv(Path("-"), tag, chosen.base, index)
        run_build(found, argv, stdin=S3_DOCKERFILE.replace("{moto}", moto))
    return tag


def run_build(found: engine.Engine, argv: list[str], stdin: str | None = None) -> None:
    """Run a `docker build`; raise BuildError with the tail of its output.

    On the project's engine the classic builder runs: the machine's Docker client has no
    BuildKit plugin, and the Dockerfiles need nothing beyond the classic builder.
    """
    env = {**found.env, "DOCKER_BUILDKIT": "0"} if found.owned else found.env
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip().splitlines()
        raise BuildError(f"`{' '.join(argv[:2])}` failed:\n" + "\n".join(output[-25:]))
