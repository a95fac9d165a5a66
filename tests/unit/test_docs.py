"""The documentation people look for: no link to a file or anchor that does not exist, a
troubleshooting entry for every condition reason, the architecture picture, the LICENSE.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctrain.api import Reason

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def markdown_files() -> list[Path]:
    """The repository's Markdown files, as git knows them (tracked or new, not ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def prose(text: str) -> Iterator[str]:
    """The lines outside fenced code blocks, with inline code removed."""
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield re.sub(r"`[^`]*`", "", line)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not fenced:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    found |= set(re.findall(r'<a (?:name|id)="([^"]+)"', path.read_text(encoding="utf-8")))
    return found


def broken_links(path: Path) -> list[str]:
    problems = []
    for line in prose(path.read_text(encoding="utf-8")):
        for target in LINK.findall(line) + IMAGE.findall(line):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            if not destination.exists():
                problems.append(f"{target}: no such file")
            elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
                problems.append(f"{target}: no such anchor")
    return problems


def test_markdown_files_are_found() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in markdown_files()}
    assert {"README.md", "docs/troubleshooting.md", "charts/ctrain/README.md"} <= names


@pytest.mark.parametrize(
    "path", markdown_files(), ids=lambda path: path.relative_to(ROOT).as_posix()
)
def test_no_link_to_a_missing_file_or_anchor(path: Path) -> None:
    assert broken_links(path) == []


def test_the_link_checker_finds_what_is_broken(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# A title, with `code`\n## Again\n## Again\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#a-title-with-code) [ok](other.md#again-1) [ok](#here)\n"
        "[gone](missing.md) [bad anchor](other.md#nowhere) [web](https://example.com/x)\n"
        "```\n[in code](nowhere.md)\n```\n# Here\n"
    )
    assert broken_links(page) == ["missing.md: no such file", "other.md#nowhere: no such anchor"]


def test_every_condition_reason_has_a_troubleshooting_entry() -> None:
    page = ROOT / "docs" / "troubleshooting.md"
    entries = set(re.findall(r"^### `(\w+)`$", page.read_text(encoding="utf-8"), re.MULTILINE))
    missing = sorted(reason.value for reason in Reason if reason.value not in entries)
    assert missing == [], f"docs/troubleshooting.md has no entry for {missing}"


def test_runbook_references_in_the_chart_exist() -> None:
    """The alerts' descriptions point at troubleshooting entries that exist."""
    text = (ROOT / "charts" / "ctrain" / "templates" / "prometheusrule.yaml").read_text()
    references = re.findall(r"docs/troubleshooting\.md#([\w-]+)", text)
    assert references
    missing = set(references) - anchors(ROOT / "docs" / "troubleshooting.md")
    assert missing == set()


def test_architecture_picture_is_svg_and_shown_in_the_readme() -> None:
    picture = ROOT / "docs" / "architecture.svg"
    root = ET.parse(picture).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    labels = " ".join(t.strip() for t in root.itertext())
    for part in ("operator", "kube-apiserver", "TrainingJob", "ModelDeployment", "S3"):
        assert part in labels, part
    assert "](docs/architecture.svg)" in (ROOT / "README.md").read_text()


def test_license_matches_pyproject() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert declared == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the full text, not a stub
    chart = (ROOT / "charts" / "ctrain" / "Chart.yaml").read_text()
    assert "artifacthub.io/license: Apache-2.0" in chart


def test_changelog_has_the_current_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert re.search(rf"^## \[?{re.escape(version)}\]?", (ROOT / "CHANGELOG.md").read_text(), re.M)
