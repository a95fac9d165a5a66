"""`ctrain generate`: write the CRD YAML generated from the API models.

The CRDs are derived files: the pydantic models in `ctrain.api` are the source of truth.
They are written to `crds/` at the repository root (for kubectl), to
`operator/ctrain/crds/` (package data, so an installed operator can apply them) and, as
Helm templates, to `charts/ctrain/templates/crds/`. `--check` is for CI and tests: it
changes nothing and fails when a file is stale.
"""

from pathlib import Path

import click

import ctrain
from ctrain.api.crd import GROUP, render_all
from ctrain.chart import CHART_CRD_SUBDIR, render_chart_crds

PACKAGE_DIR = Path(ctrain.__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]


def default_output_dirs() -> list[Path]:
    """`crds/` and the package's `crds/` in a source checkout; `./crds` elsewhere."""
    if (REPO_ROOT / "pyproject.toml").is_file():
        return [REPO_ROOT / "crds", PACKAGE_DIR / "crds"]
    return [Path.cwd() / "crds"]


def default_targets() -> list[tuple[Path, dict[str, str]]]:
    """The chart's CRD templates, in a source checkout that has the chart; else nothing."""
    chart_dir = REPO_ROOT / CHART_CRD_SUBDIR
    if (REPO_ROOT / "pyproject.toml").is_file() and chart_dir.parent.is_dir():
        return [(chart_dir, render_chart_crds())]
    return []


def stale_files(directory: Path, rendered: dict[str, str]) -> list[Path]:
    """Files in `directory` that differ from `rendered`, are missing, or are left over."""
    stale = [
        directory / name
        for name, text in sorted(rendered.items())
        if not (directory / name).is_file() or (directory / name).read_text() != text
    ]
    leftovers = sorted(
        path for path in directory.glob(f"{GROUP}_*.yaml") if path.name not in rendered
    )
    return stale + leftovers


def write(directory: Path, rendered: dict[str, str]) -> list[Path]:
    """Bring `directory` up to date; return the files written or removed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = stale_files(directory, rendered)
    for path in changed:
        if path.name in rendered:
            path.write_text(rendered[path.name])
        else:
            path.unlink()
    return changed


@click.command()
@click.option(
    "--output-dir",
    "output_dirs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the CRD YAML (repeatable). "
    "Default: crds/, operator/ctrain/crds/ and the chart's templates/crds/ in a source checkout.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file is stale.")
def generate(output_dirs: tuple[Path, ...], check: bool) -> None:
    """Generate the CustomResourceDefinitions from the API models."""
    rendered = render_all()
    targets = [(d, rendered) for d in list(output_dirs) or default_output_dirs()]
    if not output_dirs:
        targets += default_targets()
    if check:
        stale = [path for d, texts in targets for path in stale_files(d, texts)]
        for path in stale:
            click.echo(f"stale: {path}", err=True)
        if stale:
            raise click.ClickException("generated files are stale: run `make generate`")
        click.echo("generated files are up to date")
        return
    for directory, texts in targets:
        for path in write(directory, texts):
            click.echo(f"wrote {path}" if path.exists() else f"removed {path}")
