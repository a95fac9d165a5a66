"""`ctrain models report`: the HTML page built from a real registry (moto's S3 server),
rendered by headless Chromium, and the plots' marks counted in the DOM after the scripts ran.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from ctrain.cli import main
from ctrain.registry import Registry
from ctrain.storage import S3Client

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


@pytest.fixture
def story(s3_client: S3Client, bucket: str) -> Registry:
    """iris v1..v4 over four days: v1 and v3 promoted, v2 not blessed, v4 rejected; and a
    deployment whose drift rose over six checks."""
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    moments = iter(start + timedelta(hours=6 * step) for step in range(100))
    registry = Registry(s3_client, bucket, "ctrain", clock=lambda: next(moments))
    rejected = {"rejected": {"reason": "canary failed"}}
    for accuracy, blessed, extra in [
        (0.9, True, {}), (0.8, False, {}), (0.96, True, {}), (0.97, True, rejected)
    ]:  # fmt: skip
        metadata = {
            "primaryMetric": "accuracy",
            "metrics": {"accuracy": accuracy, "f1_macro": accuracy - 0.02},
            "blessed": blessed,
            "trainingJob": {"namespace": "ml", "name": "iris-run"},
            **extra,
        }
        version = registry.reserve_version("iris")
        registry.publish("iris", version, b"model", metadata, {})
        if version in ("1", "3"):
            registry.set_champion("iris", version, f"v{version} is better")
    for step in range(6):
        registry.append_monitoring(
            "iris", "ml", "iris-serving",
            {"version": "3", "score": 0.05 * step, "samples": 600, "threshold": 0.2,
             "features": {"petal_length": 0.08 * step, "sepal_width": 0.01}},
        )  # fmt: skip
    return registry


def report(bucket: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["models", "report", "iris", "--bucket", bucket, *args])
    return result.exit_code, result.output


# Elements without an end tag in the dumped DOM (SVG shapes are serialized self-closed).
VOID = {"path", "rect", "circle", "line", "br", "meta", "img", "input"}


class PlotMarks(HTMLParser):
    """Counts, per plot div, the drawn marks plotly leaves in the DOM: line paths and points
    with a path, and the traces they belong to."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []  # the plot id each open element belongs to
        self.marks: Counter[str] = Counter()
        self.traces: Counter[str] = Counter()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        current = self.stack[-1] if self.stack else None
        element_id = attributes.get("id") or ""
        if tag == "div" and element_id.startswith("plot-"):
            current = element_id
        classes = (attributes.get("class") or "").split()
        drawn = (attributes.get("d") or "").startswith("M")
        if current and tag == "path" and {"point", "js-line"} & set(classes) and drawn:
            self.marks[current] += 1
        if current and tag == "g" and "trace" in classes:
            self.traces[current] += 1
        if tag not in VOID:
            self.stack.append(current)

    def handle_endtag(self, tag: str) -> None:
        if tag not in VOID and self.stack:
            self.stack.pop()


@pytest.fixture(scope="module")
def chromium() -> Path:
    found = shutil.which("chromium")
    if found is None:
        pytest.skip(
            "chromium is not on PATH: tests/tools/ensure-tools.sh (run by `make test-unit`) "
            "installs Debian's chromium package, which needs root and apt-get"
        )
    return Path(found)


def rendered_dom(chromium: Path, page: Path, profile: Path) -> str:
    """The DOM after the page's scripts ran, from a fresh profile with no network use."""
    result = subprocess.run(
        [str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
         "--virtual-time-budget=15000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_report_plots_draw_in_chromium(
    story: Registry, bucket: str, chromium: Path, tmp_path: Path
) -> None:
    page = tmp_path / "iris.html"
    code, output = report(bucket, "-o", str(page), "--deployment", "ml/iris-serving")
    assert code == 0, output
    assert output.strip() == f"iris: report of 4 versions written to {page}"
    text = page.read_text()
    # Self-contained: no script, style or font from anywhere else.
    assert "<script src=" not in text
    assert 'rel="stylesheet"' not in text

    parser = PlotMarks()
    parser.feed(rendered_dom(chromium, page, tmp_path / "profile"))
    plots = sorted(parser.traces)
    assert len(plots) == 3, plots  # key metric over time, every metric, drift
    key_metric, metrics, drift = plots
    # blessed, unblessed, rejected and the champion's step line; two metrics; the score
    # and two features.
    assert parser.traces[key_metric] == 4
    assert parser.traces[metrics] == 2
    assert parser.traces[drift] == 3
    for plot in plots:
        assert parser.marks[plot] > 0, f"{plot} drew nothing"
    # Four version points and a champion line in the first plot.
    assert parser.marks[key_metric] >= 5


def test_report_contents(story: Registry, bucket: str, tmp_path: Path) -> None:
    page = tmp_path / "iris.html"
    code, output = report(bucket, "-o", str(page), "--deployment", "ml/iris-serving")
    assert code == 0, output
    text = page.read_text()
    assert "4 versions, champion v3, key metric accuracy" in text
    assert "champion v1" in text and "champion v3" in text  # the marked changes
    assert "rejected: canary failed" in text  # the versions table
    assert "Drift of ml" in text and "iris-serving" in text
    assert "petal_length" in text and "sepal_width" in text


def test_report_without_drift_history_says_so(story: Registry, bucket: str, tmp_path: Path) -> None:
    page = tmp_path / "iris.html"
    code, output = report(bucket, "-o", str(page), "--deployment", "ml/other")
    assert code == 0, output
    assert "no drift records for ml/other yet" in page.read_text()


def test_report_default_file_and_errors(
    story: Registry, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["models", "report", "iris", "--bucket", bucket])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "iris-report.html").is_file()
    missing = CliRunner().invoke(main, ["models", "report", "nothing", "--bucket", bucket])
    assert missing.exit_code == 1
    assert "no versions of nothing" in missing.output
    bad = CliRunner().invoke(
        main, ["models", "report", "iris", "--bucket", bucket, "--deployment", "iris"]
    )
    assert bad.exit_code == 2
    assert "use NAMESPACE/NAME" in bad.output


def test_roles_never_import_plotly() -> None:
    """The report's plotting stays out of the operator's, trainer's and server's imports."""
    code = (
        "import sys\n"
        "import ctrain.commands.models, ctrain.commands.serve, ctrain.commands.train\n"
        "import ctrain.commands.operator, ctrain.serving.app, ctrain.report.history\n"
        "assert 'plotly' not in sys.modules, 'plotly imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_missing_plotly_is_a_clear_error(story: Registry, bucket: str, tmp_path: Path) -> None:
    """Without the `report` extra the command says what to install (plotly hidden here)."""
    out = str(tmp_path / "x.html")
    code = (
        "import sys\n"
        "sys.modules['plotly'] = None\n"
        "from ctrain.cli import main\n"
        f"main(['models', 'report', 'iris', '--bucket', {bucket!r}, '-o', {out!r}])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 1
    assert "pip install 'ctrain[report]'" in result.stderr
    assert "Traceback" not in result.stderr
