"""`ctrain serve --log-format json`: every line of the process is one JSON object."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from serving_fixtures import iris_classifier, serve_process, write_model_dir

from ctrain.serving.logs import configure_logging

pytestmark = pytest.mark.unit


def test_json_log_lines_from_a_real_server(tmp_path: Path) -> None:
    model, metadata, reference, _ = iris_classifier()
    model_dir = write_model_dir(tmp_path / "iris", model, metadata, reference)
    with serve_process(model_dir, tmp_path / "serve.log", "--log-format", "json") as server:
        assert httpx.get(f"{server.base}/v2/health/live").status_code == 200
        assert server.stop() in (0, -15)
    lines = server.output().splitlines()
    records = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records), records
    messages = {r["message"] for r in records}
    assert "model iris is ready" in messages
    assert "shutting down: model iris" in messages
    assert any(r["logger"].startswith("uvicorn") for r in records)  # uvicorn's lines too
    assert records[0]["time"].endswith("+00:00")


def test_json_lines_carry_extra_fields_and_tracebacks(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging("info", "json")
        log = logging.getLogger("ctrain.test")
        log.info("loaded %s", "iris", extra={"model": "iris", "rows": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
        log.debug("not shown")
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = capsys.readouterr().err.splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    # Threads left by earlier tests (servers, log flushers) may log meanwhile: keep ours.
    first, second = (r for r in records if r["logger"] == "ctrain.test")
    assert {k: first[k] for k in ("level", "logger", "message", "model", "rows")} == {
        "level": "INFO", "logger": "ctrain.test", "message": "loaded iris", "model": "iris",
        "rows": 3,
    }  # fmt: skip
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exc_info"]


def test_an_unknown_log_format_is_refused() -> None:
    with pytest.raises(ValueError, match="log format must be one of text, json"):
        configure_logging("info", "yaml")
