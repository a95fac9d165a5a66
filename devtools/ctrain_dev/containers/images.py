"""Small images built from recipes on this machine, rebuilt only when a recipe changes.

Every image here is a Dockerfile text plus the files its context needs. The image carries
a label with a hash of both; an image of the wanted tag whose label matches is kept, so a
second run builds nothing, and a changed binary or recipe rebuilds just that image.
"""

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from ctrain_dev.containers.engine import Engine
from ctrain_dev.containers.errors import EngineError
from ctrain_dev.containers.image import run_build

Say = Callable[[str], None]
LABEL = "dev.ctrain.recipe"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def recipe_key(dockerfile: str, files: dict[str, Path]) -> str:
    """A hash of the Dockerfile and of each context file's name and content."""
    digest = hashlib.sha256(dockerfile.encode())
    for name in sorted(files):
        source = files[name]
        members = sorted(p for p in source.rglob("*") if p.is_file()) if source.is_dir() else []
        for path in members or [source]:
            relative = path.relative_to(source).as_posix() if members else ""
            digest.update(f"\0{name}/{relative}\0{file_digest(path)}".encode())
    return digest.hexdigest()[:16]


def label_of(found: Engine, tag: str) -> str | None:
    try:
        value = found.docker(
            "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', tag
        ).strip()
    except EngineError:
        return None
    return value or None


def image_id(found: Engine, tag: str) -> str:
    return found.docker("image", "inspect", "--format", "{{.Id}}", tag).strip()


def build(
    found: Engine,
    tag: str,
    dockerfile: str,
    files: dict[str, Path] | None = None,
    say: Say = _stderr,
    network_host: bool = False,
) -> str:
    """Build `tag` from `dockerfile` and context `files` (name in context -> path) if stale."""
    files = files or {}
    key = recipe_key(dockerfile, files)
    if label_of(found, tag) == key:
        return tag
    say(f"building {tag}")
    with tempfile.TemporaryDirectory(prefix="ctrain-image-") as scratch:
        context = Path(scratch)
        (context / "Dockerfile").write_text(dockerfile)
        for name, source in files.items():
            target = context / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                # Copied without modes: the Go module cache is read-only; recipes chmod.
                shutil.copytree(source, target, copy_function=shutil.copyfile)
                for path in [target, *target.rglob("*")]:
                    path.chmod(0o755 if path.is_dir() else 0o644)
            else:
                shutil.copy2(source, target)
        argv = ["docker", "build", "--tag", tag, "--label", f"{LABEL}={key}"]
        if network_host:
            argv.append("--network=host")
        run_build(found, [*argv, str(context)])
    return tag
