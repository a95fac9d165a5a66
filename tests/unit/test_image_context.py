"""The image's build: what `.dockerignore` sends, installed the way the Dockerfile does.

The test replays the builder stage's install step on the same build context: a wheel of
exactly the files the image gets must carry the CLI entry point and the product, and
nothing of the development tooling (the sandbox, images and generators live in devtools/).
"""

import fnmatch
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).parents[2]


def context_files() -> list[Path]:
    """Files `.dockerignore` lets through (its `*` + `!` re-includes + excludes)."""
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    chosen = []
    for path in ROOT.rglob("*"):
        if not path.is_file():
            continue
        relative = path.relative_to(ROOT).as_posix()
        included = False
        for rule in rules:
            negated, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/")
            if (
                fnmatch.fnmatch(relative, pattern)
                or relative.startswith(pattern + "/")
                or fnmatch.fnmatch(relative, pattern + "/*")
            ):
                included = negated
        if included:
            chosen.append(path)
    return chosen


def test_context_is_only_the_package_sources():
    names = {p.relative_to(ROOT).as_posix() for p in context_files()}
    assert {"pyproject.toml", "README.md", "operator/ctrain/cli.py"} <= names
    assert not [n for n in names if n.startswith((".venv/", ".git/", "tests/", "charts/"))]
    assert not [n for n in names if n.startswith("devtools/")]
    assert not [n for n in names if "/gomod-" in n or "__pycache__" in n]


def test_the_dockerfile_install_step_yields_the_cli_and_only_the_product(tmp_path):
    context = tmp_path / "context"
    for path in context_files():
        target = context / path.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path / "out"),
            str(context),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "out").glob("ctrain-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(
            archive.read(n).decode() for n in names if n.endswith("entry_points.txt")
        )
    assert "ctrain = ctrain.cli:main" in entry_points
    assert "ctrain/serving/app.py" in names and "ctrain/trainer/run.py" in names
    assert "ctrain/controller/handlers.py" in names and "ctrain/registry/core.py" in names
    tooling = [
        n for n in names if n.startswith(("ctrain_dev/", "ctrain/sandbox/", "ctrain/nodeagent/"))
    ]
    assert not tooling, tooling
    assert not [n for n in names if "/crds/" in n or "gomod" in n]
