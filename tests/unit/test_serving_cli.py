"""`ctrain serve` refuses inconsistent options before it starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ctrain.cli import main

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--model", "iris"], "--bucket (or CTRAIN_BUCKET) is required to use the registry"),
        (["--model-dir", "{dir}", "--prediction-log"],
         "--prediction-log needs --bucket (or CTRAIN_BUCKET)"),
        (["--model-dir", "{dir}", "--sse", "AES256", "--sse-kms-key-id", "alias/ml"],
         "a KMS key id needs --sse aws:kms"),
        (["--model-dir", "{dir}", "--max-body-bytes", "100", "--max-inflight-bytes", "10"],
         "max_inflight_bytes must be at least max_body_bytes"),
        (["--model-dir", "{dir}", "--prediction-log-sample-rate", "1.5"],
         "1.5 is not in the range 0<=x<=1"),
        (["--model-dir", "{dir}", "--workers", "0"], "0 is not in the range x>=1"),
        (["--model-dir", "{dir}", "--header-timeout", "0"], "0.0 is not in the range x>0"),
    ],
)  # fmt: skip
def test_inconsistent_options_are_refused(tmp_path: Path, args: list[str], error: str) -> None:
    runner = CliRunner(env={"CTRAIN_BUCKET": None, "CTRAIN_S3_SSE": None})
    args = [a.replace("{dir}", str(tmp_path)) for a in args]
    result = runner.invoke(main, ["serve", *args])
    assert result.exit_code == 2, result.output
    assert error in result.output
