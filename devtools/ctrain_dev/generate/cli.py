"""`ctrain generate`: write the CRD YAML generated from the API models.

The CRDs are derived files: the pydantic models in `ctrain.api` are the source of truth.
They are written to `crds/` (for kubectl) and, as Helm templates, to
`charts/ctrain/templates/crds/`, both relative to `--root` (default: the current
directory, the repository root when run by `make generate`). `--check` is for CI and
tests: it changes nothing and fails when a file is stale.
"""

from pathlib import Path

import click

from ctrain_dev.generate.chart import CHART_CRD_SUBDIR, render_chart_crds
from ctrain_dev.generate.crd import GROUP, render_all

CRD_SUBDIR = Path("crds")


def default_targets(root: Path) -> list[tuple[Path, dict[str, str]]]:
    """`crds/` and the chart's CRD templates under `root`."""
    return [(root / CRD_SUBDIR, render_all()), (root / CHART_CRD_SUBDIR, render_chart_crds())]


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
    help="Directory for the CRD YAML (repeatable). Default: crds/ and the chart's "
    "templates/crds/ under --root.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The repository root the default outputs are relative to.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if any file is stale.")
def generate(output_dirs: tuple[Path, ...], root: Path, check: bool) -> None:
    """Generate the CustomResourceDefinitions from the API models."""
    if output_dirs:
        rendered = render_all()
        targets = [(directory, rendered) for directory in output_dirs]
    else:
        targets = default_targets(root)
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
