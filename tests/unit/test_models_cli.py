"""`ctrain models list|show|promote|rollback|history` against a real S3 API."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner, Result

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.cli import main
from ctrain.registry import Registry
from ctrain.storage import S3Client

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]


def _models(bucket: str, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner(env=env).invoke(main, ["models", *args, "--bucket", bucket])


@pytest.fixture
def populated(s3_client: S3Client, bucket: str) -> Registry:
    """iris v1..v3 (v2 unblessed), v1 then v3 promoted."""
    times = iter(datetime(2026, 11, 22, 10, minute, tzinfo=UTC) for minute in range(60))
    registry = Registry(s3_client, bucket, "ctrain", clock=lambda: next(times))
    for accuracy, f1, blessed in [(0.9, 0.89, True), (0.8, 0.75, False), (0.9667, 0.96, True)]:
        version = registry.reserve_version("iris")
        metadata = {
            "task": "classification",
            "primaryMetric": "accuracy",
            "metrics": {"accuracy": accuracy, "f1_macro": f1},
            "blessed": blessed,
        }
        registry.publish(
            "iris", version, b"not a real model", ModelMetadata.parse(metadata), Reference(rows=1)
        )
    registry.set_champion("iris", "1", "first")
    registry.set_champion("iris", "3", "better")
    return registry


def test_list(populated: Registry, bucket: str) -> None:
    result = _models(bucket, "list", "iris")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "VERSION  CREATED               ACCURACY  F1_MACRO  BLESSED  CHAMPION",
        "1        2026-11-22T10:01:00Z  0.9000    0.8900    yes",
        "2        2026-11-22T10:03:00Z  0.8000    0.7500    no",
        "3        2026-11-22T10:05:00Z  0.9667    0.9600    yes      *",
    ]


def test_list_of_an_unknown_model(bucket: str) -> None:
    result = _models(bucket, "list", "nothing")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"no versions of nothing in s3://{bucket}/ctrain"


def test_prefix_and_bucket_come_from_the_environment(populated: Registry, bucket: str) -> None:
    env = {"CTRAIN_BUCKET": bucket, "CTRAIN_PREFIX": "elsewhere"}
    result = CliRunner(env=env).invoke(main, ["models", "list", "iris"])
    assert result.stdout.startswith("no versions of iris in s3://")
    assert "/elsewhere" in result.stdout
    env = {"CTRAIN_BUCKET": bucket}
    result = CliRunner(env=env).invoke(main, ["models", "list", "iris"])
    assert "3        2026-11-22T10:05:00Z" in result.stdout


def test_show(populated: Registry, bucket: str) -> None:
    result = _models(bucket, "show", "iris", "champion")
    assert result.exit_code == 0, result.output
    header, uri, *body = result.stdout.splitlines()
    assert header == "# iris v3 (champion)"
    assert uri == f"# s3://{bucket}/ctrain/iris/versions/3/"
    document = json.loads("\n".join(body))
    assert document == populated.metadata("iris", "3").to_wire()
    assert _models(bucket, "show", "iris", "2").stdout.splitlines()[0] == "# iris v2"
    assert _models(bucket, "show", "iris", "latest").stdout.splitlines()[0].startswith("# iris v3")


def test_show_of_a_missing_version_fails_cleanly(populated: Registry, bucket: str) -> None:
    result = _models(bucket, "show", "iris", "9")
    assert result.exit_code == 1
    assert "model 'iris' has no version 9" in result.stderr
    assert "Traceback" not in result.output
    result = _models(bucket, "show", "iris", "best")
    assert result.exit_code == 1
    assert "use champion, latest or a version number" in result.stderr


def test_promote(populated: Registry, bucket: str) -> None:
    result = _models(bucket, "promote", "iris", "2", "--reason", "hotfix")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "iris: champion v3 -> v2"
    assert populated.champion("iris") == "2"
    assert populated.champion_history("iris")[-1].reason == "hotfix"
    again = _models(bucket, "promote", "iris", "2", "--reason", "again")
    assert again.stdout.strip() == "iris: v2 already is the champion"
    missing = _models(bucket, "promote", "iris", "7", "--reason", "x")
    assert missing.exit_code == 1
    no_reason = _models(bucket, "promote", "iris", "2")
    assert no_reason.exit_code == 2  # usage error: --reason is required


def test_rollback_and_history(populated: Registry, bucket: str) -> None:
    result = _models(bucket, "rollback", "iris", "--reason", "canary failed")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "iris: rolled back champion v3 -> v1"
    assert populated.champion("iris") == "1"

    result = _models(bucket, "rollback", "iris", "--to", "2", "--reason", "pin")
    assert result.stdout.strip() == "iris: rolled back champion v1 -> v2"

    history = _models(bucket, "history", "iris").stdout.splitlines()
    assert history[0].split() == ["TIME", "FROM", "TO", "REASON"]
    assert [line.split(None, 3)[1:] for line in history[1:]] == [
        ["(none)", "v1", "first"],
        ["v1", "v3", "better"],
        ["v3", "v1", "canary failed"],
        ["v1", "v2", "pin"],
    ]


def test_rollback_without_a_previous_champion(s3_client: S3Client, bucket: str) -> None:
    registry = Registry(s3_client, bucket, "ctrain")
    registry.publish(
        "iris", registry.reserve_version("iris"), b"m", ModelMetadata(), Reference(rows=0)
    )
    registry.set_champion("iris", "1", "first")
    result = _models(bucket, "rollback", "iris", "--reason", "x")
    assert result.exit_code == 1
    assert "no previous champion" in result.stderr
