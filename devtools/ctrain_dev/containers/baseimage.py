"""Base images made on this machine from Debian packages, for where nothing can be pulled.

No container registry is reachable here, so `python:3.11-slim-bookworm` and kind's base
image cannot be pulled. Debian's package mirror is reachable: `debootstrap` makes a minimal
bookworm root filesystem, imported into Docker as an image; recipes (Dockerfile text) then
install packages on it with apt over the host's network, as a Dockerfile `FROM debian`
would. The mirror is the one this host's apt uses.

Images are tagged `ctrain-base/<name>:<key>`, the key a hash of everything that shapes
them (suite, recipe), so a changed recipe makes a new image and an unchanged one is built
once per engine data root (kept in the cache across runs).
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ctrain_dev.containers import engine as engine_module
from ctrain_dev.containers.engine import Engine
from ctrain_dev.containers.errors import BuildError, EngineError

Say = Callable[[str], None]

SUITE = "bookworm"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Mirrors:
    """The Debian archive and its security archive, as this host's apt reaches them."""

    debian: str
    security: str

    def sources_list(self, suite: str = SUITE) -> str:
        return (
            f"deb {self.debian} {suite} main\n"
            f"deb {self.debian} {suite}-updates main\n"
            f"deb {self.security} {suite}-security main\n"
        )


def parse_sources(text: str) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every `deb` entry in apt sources, deb822 or one-line style."""
    entries: list[tuple[str, list[str]]] = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("deb "):  # one-line style: deb [opts] URI suite components
                words = [word for word in line.split()[1:] if not word.startswith("[")]
                words = [word for word in words if not word.endswith("]")]
                if len(words) >= 2:
                    entries.append((words[0], [words[1]]))
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        if fields.get("types", "").split()[:1] == ["deb"] and fields.get("uris"):
            for uri in fields["uris"].split():
                entries.append((uri, fields.get("suites", "").split()))
    return entries


def host_mirrors(suite: str = SUITE) -> Mirrors:
    """The Debian mirrors of this host's apt configuration (or CTRAIN_DEBIAN_MIRROR...)."""
    debian = os.environ.get("CTRAIN_DEBIAN_MIRROR")
    security = os.environ.get("CTRAIN_DEBIAN_SECURITY_MIRROR")
    texts = []
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if path.suffix in (".list", ".sources") and path.is_file():
            texts.append(path.read_text(errors="replace"))
    for uri, suites in parse_sources("\n\n".join(texts)):
        if not debian and suite in suites:
            debian = uri
        if not security and f"{suite}-security" in suites:
            security = uri
    if not debian or not security:
        raise BuildError(
            f"no Debian {suite} mirror in this host's apt sources; set CTRAIN_DEBIAN_MIRROR "
            "and CTRAIN_DEBIAN_SECURITY_MIRROR to the archive URLs"
        )
    return Mirrors(debian.rstrip("/"), security.rstrip("/"))


def key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def exists(engine: Engine, image: str) -> bool:
    try:
        return bool(engine.docker("image", "inspect", "--format", "{{.Id}}", image).strip())
    except EngineError:
        return False


def pullable(engine: Engine, image: str, say: Say = _stderr) -> bool:
    """True if `image` is present or can be pulled now (False where no registry answers)."""
    if exists(engine, image):
        return True
    try:
        engine.docker("pull", "--quiet", image)
    except EngineError as error:
        reason = str(error).splitlines()[-1][-120:]
        say(f"{image} cannot be pulled here (...{reason}); using a locally made equivalent")
        return False
    return True


def minbase(engine: Engine, say: Say = _stderr, suite: str = SUITE) -> str:
    """A minimal Debian root filesystem from debootstrap, imported as an image."""
    mirrors = host_mirrors(suite)
    tag = f"ctrain-base/debian:{suite}-{key(suite, mirrors.sources_list(suite), 'minbase-1')}"
    if exists(engine, tag):
        return tag
    if shutil.which("debootstrap") is None:
        engine_module.install_packages(("debootstrap",), say)
    say(f"making a Debian {suite} root filesystem with debootstrap (first time only)")
    with tempfile.TemporaryDirectory(prefix="ctrain-rootfs-") as scratch:
        root = Path(scratch) / "rootfs"
        done = subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--components=main",
                suite,
                str(root),
                mirrors.debian,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BuildError(f"debootstrap failed: {(done.stdout + done.stderr)[-800:]}")
        (root / "etc/apt/sources.list").write_text(mirrors.sources_list(suite))
        shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
        (root / "var/cache/apt/archives/partial").mkdir(parents=True)
        tar = subprocess.Popen(
            ["tar", "--numeric-owner", "-C", str(root), "-c", "."], stdout=subprocess.PIPE
        )
        imported = subprocess.run(
            ["docker", "import", "--change", 'CMD ["bash"]', "-", tag],
            stdin=tar.stdout,
            capture_output=True,
            env=engine.env,
            check=False,
        )
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise BuildError(f"docker import failed: {imported.stderr.decode()[-400:]}")
    return tag


def build(engine: Engine, name: str, recipe: str, say: Say = _stderr) -> str:
    """`ctrain-base/<name>:<key>` from a Dockerfile `recipe` whose FROM is the minimal base.

    The recipe's `{minbase}` is replaced by the debootstrapped image. It builds with the
    host's network (apt reaches the host's mirror; containers have no NAT of their own).
    """
    base = minbase(engine, say)
    dockerfile = recipe.replace("{minbase}", base)
    tag = f"ctrain-base/{name}:{key(dockerfile)}"
    if exists(engine, tag):
        return tag
    say(f"building the base image {tag} (first time only)")
    with tempfile.TemporaryDirectory(prefix="ctrain-base-") as context:
        (Path(context) / "Dockerfile").write_text(dockerfile)
        done = subprocess.run(
            ["docker", "build", "--network=host", "--tag", tag, context],
            capture_output=True,
            text=True,
            env={**engine.env, "DOCKER_BUILDKIT": "0"},
            check=False,
        )
    if done.returncode != 0:
        raise BuildError(f"building {tag} failed:\n{(done.stdout + done.stderr)[-1500:]}")
    return tag


# python:3.11-slim-bookworm's equivalent: CPython 3.11 with venv and pip, CA certificates,
# time zones, `python` on PATH, the shadow tools for adding a user; no compiler.
PYTHON_RECIPE = """\
FROM {minbase}
RUN apt-get update \\
    && DEBIAN_FRONTEND=noninteractive apt-get upgrade -y \\
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \\
       ca-certificates netbase tzdata passwd python3 python3-venv python-is-python3 \\
    && apt-get clean && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8
CMD ["python3"]
"""


def python_base(engine: Engine, say: Say = _stderr) -> str:
    return build(engine, "python", PYTHON_RECIPE, say)
