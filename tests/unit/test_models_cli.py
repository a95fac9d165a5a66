"""`ctrain models list|show|promote|rollback|history` against a real S3 API."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
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
    lines = [line.split(None, 1) for line in result.stdout.splitlines()]
    fields = {line[0]: line[1] if len(line) > 1 else "" for line in lines}
    assert fields["MODEL"] == "iris"
    assert fields["VERSION"] == "3 (champion)"
    assert fields["ARTIFACTS"] == f"s3://{bucket}/ctrain/iris/versions/3/"
    assert fields["BLESSED"] == "yes"
    assert fields["REJECTED"] == "no"
    assert fields["accuracy"] == "0.9667"
    assert fields["f1_macro"] == "0.9600"
    assert _models(bucket, "show", "iris", "2").stdout.splitlines()[1].split() == ["VERSION", "2"]


@pytest.mark.parametrize("reference", ["champion", "latest", "3"])
def test_show_json_is_pure_json(populated: Registry, bucket: str, reference: str) -> None:
    result = _models(bucket, "show", "iris", reference, "-o", "json")
    assert result.exit_code == 0, result.output
    # What `| python -m json.tool` and `| jq` need: one JSON document and nothing else.
    tool = subprocess.run(
        [sys.executable, "-m", "json.tool"], input=result.stdout, capture_output=True,
        text=True, check=False,
    )  # fmt: skip
    assert tool.returncode == 0, tool.stderr
    document = json.loads(result.stdout)
    assert document == {
        **populated.metadata("iris", "3").to_wire(),
        "artifactUri": f"s3://{bucket}/ctrain/iris/versions/3/",
        "champion": True,
        "rejected": False,
    }


def test_show_yaml(populated: Registry, bucket: str) -> None:
    result = _models(bucket, "show", "iris", "2", "-o", "yaml")
    assert result.exit_code == 0, result.output
    document = yaml.safe_load(result.stdout)
    assert document["version"] == "2"
    assert document["champion"] is False
    assert document["metrics"] == {"accuracy": 0.8, "f1_macro": 0.75}


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
    assert history[0].split() == ["TIME", "FROM", "TO", "ACTION", "BY", "REASON"]
    assert [line.split(None, 4)[1:4] for line in history[1:]] == [
        ["(none)", "v1", "promote"],
        ["v1", "v3", "promote"],
        ["v3", "v1", "rollback"],
        ["v1", "v2", "rollback"],
    ]
    assert history[3].endswith("ctrain models  canary failed")
    assert history[4].endswith("ctrain models  pin")


def test_reject_and_promote_by_hand_unrejects(populated: Registry, bucket: str) -> None:
    result = _models(bucket, "reject", "iris", "3", "--reason", "5xx in canary")
    assert (result.exit_code, result.stdout.strip()) == (0, "iris: v3 rejected (5xx in canary)")
    listed = json_tool(_models(bucket, "list", "iris", "-o", "json").stdout)
    assert listed["versions"][2]["rejected"] is True
    assert listed["versions"][2]["rejectedReason"] == "5xx in canary"
    table = _models(bucket, "list", "iris").stdout.splitlines()
    assert table[0].split()[-2:] == ["REJECTED", "CHAMPION"]
    assert populated.resolve("iris", "champion") == "1"
    assert populated.resolve("iris", "latest") == "2"

    result = _models(bucket, "promote", "iris", "3", "--reason", "fixed upstream")
    assert result.stdout.strip() == "iris: champion v3 -> v3 (un-rejected)"
    assert populated.rejected("iris", "3") is None
    last = json_tool(_models(bucket, "history", "iris", "-o", "json").stdout)["changes"][-1]
    assert (last["action"], last["by"], last["unrejected"]) == ("unreject", "ctrain models", True)
    assert "it was rejected: 5xx in canary" in last["reason"]


def test_rollback_without_a_previous_champion(s3_client: S3Client, bucket: str) -> None:
    registry = Registry(s3_client, bucket, "ctrain")
    registry.publish(
        "iris", registry.reserve_version("iris"), b"m", ModelMetadata(), Reference(rows=0)
    )
    registry.set_champion("iris", "1", "first")
    result = _models(bucket, "rollback", "iris", "--reason", "x")
    assert result.exit_code == 1
    assert "no previous champion" in result.stderr


# --- output formats, every metric, rejected versions ---------------------------------------


def json_tool(text: str) -> Any:
    """Parse ``text`` as `python -m json.tool` does, failing on anything but one document."""
    tool = subprocess.run(
        [sys.executable, "-m", "json.tool"], input=text, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert tool.returncode == 0, tool.stderr
    return json.loads(tool.stdout)


def test_list_json_and_yaml(populated: Registry, bucket: str) -> None:
    document = json_tool(_models(bucket, "list", "iris", "-o", "json").stdout)
    assert document["model"] == "iris"
    assert document["champion"] == "3"
    assert [v["version"] for v in document["versions"]] == ["1", "2", "3"]
    assert document["versions"][1] == {
        "version": "2",
        "createdAt": "2026-11-22T10:03:00Z",
        "metrics": {"accuracy": 0.8, "f1_macro": 0.75},
        "primaryMetric": "accuracy",
        "blessed": False,
        "champion": False,
        "rejected": False,
        "trainingJob": None,
        "estimator": None,
    }
    assert yaml.safe_load(_models(bucket, "list", "iris", "-o", "yaml").stdout) == document


def test_list_json_of_an_unknown_model_is_still_json(bucket: str) -> None:
    document = json_tool(_models(bucket, "list", "nothing", "-o", "json").stdout)
    assert document == {"model": "nothing", "champion": None, "versions": []}


def test_history_json(populated: Registry, bucket: str) -> None:
    document = json_tool(_models(bucket, "history", "iris", "-o", "json").stdout)
    assert [(c["from"], c["to"], c["reason"]) for c in document["changes"]] == [
        (None, "1", "first"),
        ("1", "3", "better"),
    ]
    assert document["changes"][0]["time"].endswith("Z")
    empty = json_tool(_models(bucket, "history", "nothing", "-o", "json").stdout)
    assert empty == {"model": "nothing", "changes": []}


def test_every_metric_can_be_listed(s3_client: S3Client, bucket: str) -> None:
    registry = Registry(s3_client, bucket, "ctrain")
    metrics = {"accuracy": 0.9, "f1_macro": 0.8, "precision_macro": 0.7, "recall_macro": 0.6}
    registry.publish(
        "iris", registry.reserve_version("iris"), b"m",
        ModelMetadata(primary_metric="f1_macro", metrics=metrics), Reference(rows=0),
    )  # fmt: skip
    default = _models(bucket, "list", "iris").stdout.splitlines()[0].split()
    assert default == ["VERSION", "CREATED", "F1_MACRO", "ACCURACY", "PRECISION_MACRO",
                       "BLESSED", "CHAMPION"]  # fmt: skip
    every = _models(bucket, "list", "iris", "--all-metrics").stdout.splitlines()
    assert every[0].split()[2:6] == ["F1_MACRO", "ACCURACY", "PRECISION_MACRO", "RECALL_MACRO"]
    assert every[1].split()[2:6] == ["0.8000", "0.9000", "0.7000", "0.6000"]


class RejectingRegistry(Registry):
    """A registry with the rejection record another part of ctrain writes."""

    def rejected(self, model: str, version: str) -> dict[str, str] | None:
        return {"reason": "never became ready"} if version == "2" else None


def test_rejected_versions_are_shown(s3_client: S3Client, bucket: str) -> None:
    registry = RejectingRegistry(s3_client, bucket, "ctrain")
    for blessed in (True, True, False):
        metadata = {"primaryMetric": "accuracy", "metrics": {"accuracy": 0.9}, "blessed": blessed}
        registry.publish(
            "iris", registry.reserve_version("iris"), b"m", ModelMetadata.parse(metadata),
            Reference(rows=0),
        )  # fmt: skip
    # A rejection recorded in metadata.json counts too.
    key = "ctrain/iris/versions/3/metadata.json"
    doc = json.loads(s3_client.get_object(Bucket=bucket, Key=key)["Body"].read())
    s3_client.put_object(Bucket=bucket, Key=key, Body=json.dumps({**doc, "rejected": True}))

    from ctrain.report.history import load_history

    records = load_history(registry, "iris").versions
    assert [(r.rejected, r.rejected_reason) for r in records] == [
        (False, None),
        (True, "never became ready"),
        (True, None),
    ]
    runner = CliRunner()
    result = runner.invoke(main, ["models", "list", "iris", "--bucket", bucket],
                           obj={"s3_client": s3_client})  # fmt: skip
    assert result.stdout.splitlines()[0].split()[-2:] == ["REJECTED", "CHAMPION"]


def test_a_registry_without_rejections_reads_metadata_only(populated: Registry) -> None:
    from ctrain.report.history import rejection

    assert not hasattr(populated, "rejected") or callable(populated.rejected)
    assert rejection(populated, "iris", "1", {}) == (False, None)
    assert rejection(populated, "iris", "1", {"rejected": "bad canary"}) == (True, "bad canary")
