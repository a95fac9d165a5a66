"""`ctrain train` end to end against a real S3 API: datasets in, three artifacts out."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from ctrain.cli import main
from ctrain.registry import Registry
from ctrain.storage import S3Client
from ctrain.trainer.data import builtin_frame

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

TrainCli = Callable[..., tuple[int, dict[str, Any], str]]

LOGREG = "sklearn.linear_model.LogisticRegression"
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
JOB_ENV = {
    "CTRAIN_TRAININGJOB_NAME": "iris-1",
    "CTRAIN_TRAININGJOB_NAMESPACE": "default",
    "CTRAIN_TRAININGJOB_UID": "0f3c-uid",
}


def _spec(bucket: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model": "iris",
        "dataset": {"uri": "builtin://iris"},
        "estimator": {"type": LOGREG, "params": {"max_iter": 200}},
        "evaluation": {"testSize": 0.2, "seed": 42, "gates": [{"metric": "accuracy", "min": 0.8}]},
        "storage": {"bucket": bucket, "prefix": "ctrain"},
    }
    spec.update(overrides)
    return spec


def _iris_table() -> pd.DataFrame:
    frame = builtin_frame("iris").rename(columns={"target": "species"})
    # A categorical feature, so the one-hot branch of the pipeline is exercised.
    frame["region"] = np.where(np.arange(len(frame)) % 3 == 0, "north", "south")
    return frame


def _upload(s3: S3Client, bucket: str, key: str, data: bytes) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body=data)
    return f"s3://{bucket}/{key}"


def _get(s3: S3Client, bucket: str, key: str) -> bytes:
    data: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


def test_builtin_iris_end_to_end(
    run_train: TrainCli, s3_client: S3Client, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    code, message, stderr = run_train(_spec(bucket), tmp_path / "termination", env=JOB_ENV)

    assert code == 0, message
    assert message["ok"] is True
    assert (message["model"], message["version"], message["task"]) == (
        "iris",
        "1",
        "classification",
    )
    assert message["artifactUri"] == f"s3://{bucket}/ctrain/iris/versions/1/"
    assert set(message["metrics"]) == {"accuracy", "f1_macro"}  # the classification defaults
    assert message["metrics"]["accuracy"] > 0.8
    assert message["keyMetric"] == f"accuracy={message['metrics']['accuracy']:.4f}"
    assert message["baseline"] is None
    assert (message["blessed"], message["promoted"]) == (True, True)
    assert message["gates"] == [
        {"metric": "accuracy", "min": 0.8, "value": message["metrics"]["accuracy"], "passed": True}
    ]
    assert message["decision"].startswith("promoted: no champion")
    assert message["rows"] == 150
    canonical = builtin_frame("iris").to_csv(index=False, lineterminator="\n").encode()
    assert message["dataFingerprint"] == "sha256:" + hashlib.sha256(canonical).hexdigest()
    assert "loaded uri=builtin://iris rows=150" in stderr
    assert "testing-secret" not in stderr

    prefix = "ctrain/iris/versions/1/"
    model_bytes = _get(s3_client, bucket, prefix + "model.skops")
    metadata = json.loads(_get(s3_client, bucket, prefix + "metadata.json"))
    reference = json.loads(_get(s3_client, bucket, prefix + "reference.json"))
    assert metadata["modelSha256"] == hashlib.sha256(model_bytes).hexdigest()
    assert metadata["features"] == IRIS_FEATURES
    assert metadata["featureTypes"] == dict.fromkeys(IRIS_FEATURES, "numeric")
    assert metadata["target"] == "target"
    assert metadata["classes"] == ["setosa", "versicolor", "virginica"]
    assert metadata["metrics"] == message["metrics"]
    assert metadata["estimator"] == {
        "type": LOGREG,
        "params": {"max_iter": 200, "random_state": 42},
    }
    assert metadata["dataset"] == {
        "uri": "builtin://iris",
        "fingerprint": message["dataFingerprint"],
        "rows": 150,
    }
    assert metadata["trainingJob"] == {"name": "iris-1", "namespace": "default", "uid": "0f3c-uid"}
    assert metadata["packageVersion"] == "0.1.0"
    assert metadata["blessed"] is True
    assert metadata["primaryMetric"] == "accuracy"
    split = metadata["split"]
    assert (split["method"], split["seed"], split["testSize"], split["buckets"]) == (
        "contentHash",
        42,
        0.2,
        10_000,
    )
    assert split["columns"] == [*IRIS_FEATURES, "target"]
    assert split["trainRows"] + split["testRows"] == 150 and split["stratified"] is False
    assert message["comparison"] == {"verdict": "NoChampion", "reason": "no champion yet"}
    assert metadata["comparison"] == message["comparison"]
    assert (message["blessedReason"], message["promotionReason"]) == ("NoBaseline", "Promoted")

    assert reference["rows"] == split["trainRows"]  # the training split, not the whole dataset
    for name in IRIS_FEATURES:
        stats = reference["features"][name]
        assert stats["kind"] == "numeric"
        assert len(stats["edges"]) == len(stats["frequencies"]) + 1
        assert sum(stats["frequencies"]) == pytest.approx(1.0)

    assert registry.champion("iris") == "1"
    model = registry.load_model("iris", "1")
    setosa, virginica = [5.1, 3.5, 1.4, 0.2], [7.7, 3.0, 6.1, 2.3]
    assert model.predict(np.array([setosa, virginica])).tolist() == ["setosa", "virginica"]


def test_csv_in_s3_end_to_end(
    run_train: TrainCli, s3_client: S3Client, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    data = _iris_table().to_csv(index=False).encode()
    uri = _upload(s3_client, bucket, "datasets/iris.csv", data)
    dataset = {
        "uri": uri,
        "target": "species",
        "expectations": {
            "minRows": 100,
            "columns": {
                "sepal_length": {"type": "float", "min": 0, "max": 20, "nullable": False},
                "species": {"type": "category", "allowed": ["setosa", "versicolor", "virginica"]},
                "region": {"type": "category"},
            },
        },
    }
    code, message, _ = run_train(_spec(bucket, dataset=dataset), tmp_path / "termination")

    assert code == 0, message
    assert message["dataFingerprint"] == "sha256:" + hashlib.sha256(data).hexdigest()
    metadata = registry.metadata("iris", message["version"]).to_wire()
    assert metadata["features"] == [*IRIS_FEATURES, "region"]
    assert metadata["featureTypes"]["region"] == "categorical"
    reference = registry.reference("iris", message["version"]).to_wire()
    region = reference["features"]["region"]
    assert region["kind"] == "categorical"
    assert set(region["frequencies"]) == {"north", "south"}
    assert sum(region["frequencies"].values()) == pytest.approx(1.0)
    model = registry.load_model("iris", message["version"])
    rows = np.array([[5.1, 3.5, 1.4, 0.2, "north"], [7.7, 3.0, 6.1, 2.3, "unseen"]], dtype=object)
    assert model.predict(rows).tolist() == ["setosa", "virginica"]


def test_parquet_in_s3_regression_end_to_end(
    run_train: TrainCli, s3_client: S3Client, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    buffer = io.BytesIO()
    builtin_frame("diabetes").rename(columns={"target": "progression"}).to_parquet(buffer)
    data = buffer.getvalue()
    uri = _upload(s3_client, bucket, "datasets/diabetes.parquet", data)
    spec = _spec(
        bucket,
        model="diabetes",
        dataset={"uri": uri, "target": "progression"},
        estimator={
            "type": "sklearn.ensemble.RandomForestRegressor",
            "params": {"n_estimators": 20},
        },
        evaluation={"seed": 1},
    )
    code, message, _ = run_train(spec, tmp_path / "termination")

    assert code == 0, message
    assert message["task"] == "regression"
    assert list(message["metrics"]) == ["r2", "rmse", "mae"]
    assert message["dataFingerprint"] == "sha256:" + hashlib.sha256(data).hexdigest()
    metadata = registry.metadata("diabetes", "1").to_wire()
    assert metadata["classes"] is None
    assert metadata["split"]["stratified"] is False
    model = registry.load_model("diabetes", "1")
    assert model.predict(np.zeros((2, 10))).shape == (2,)


def test_the_champion_is_compared_on_the_same_holdout(
    run_train: TrainCli, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    weak = _spec(bucket, estimator={"type": LOGREG, "params": {"max_iter": 1}}, evaluation={})
    strong = _spec(bucket, estimator={"type": LOGREG, "params": {"max_iter": 200}}, evaluation={})

    _, first, _ = run_train(weak, tmp_path / "t1")
    assert (first["version"], first["promoted"]) == ("1", True)

    _, second, _ = run_train(strong, tmp_path / "t2")
    assert second["metrics"]["accuracy"] > first["metrics"]["accuracy"]
    # The champion was re-scored on this run's holdout: same split, same numbers, and with
    # the same split parameters no holdout row was in the champion's training data.
    assert second["baseline"] == {"version": "1", "metrics": first["metrics"]}
    comparison = second["comparison"]
    test_rows = registry.metadata("iris", "2").split.test_rows  # type: ignore[union-attr]
    assert (comparison["holdoutRows"], comparison["excludedRows"]) == (test_rows, 0)
    assert comparison["championSeenRows"] == 0
    assert comparison["champion"] == {"accuracy": first["metrics"]["accuracy"]}
    assert comparison["challenger"] == {"accuracy": second["metrics"]["accuracy"]}
    assert comparison["delta"] == pytest.approx(
        second["metrics"]["accuracy"] - first["metrics"]["accuracy"], abs=2e-6
    )
    low, high = comparison["confidenceInterval"]
    assert low <= comparison["delta"] <= high
    assert comparison["test"] == "McNemar" and 0 <= comparison["pValue"] <= 1
    assert comparison["verdict"] == "Better"
    assert (second["blessed"], second["promoted"]) == (True, True)
    assert second["decision"].startswith("promoted: accuracy")
    assert "beats champion v1" in second["decision"]
    assert registry.champion("iris") == "2"

    code, third, _ = run_train(weak, tmp_path / "t3")
    assert code == 0  # a model that is not better is a successful run, just not promoted
    assert third["baseline"] == {"version": "2", "metrics": second["metrics"]}
    assert (third["blessed"], third["promoted"]) == (False, False)
    assert third["decision"].startswith("kept champion v2")
    assert registry.champion("iris") == "2"
    assert registry.list_versions("iris") == ["1", "2", "3"]
    assert registry.metadata("iris", "3").blessed is False

    # Same model again: a tie does not beat the champion.
    _, fourth, _ = run_train(strong, tmp_path / "t4")
    assert fourth["metrics"] == second["metrics"]
    assert (fourth["blessed"], fourth["promoted"]) == (False, False)
    assert (fourth["comparison"]["delta"], fourth["comparison"]["pValue"]) == (0.0, 1.0)
    assert fourth["comparison"]["verdict"] == "NotBetter"
    assert fourth["blessedReason"] == "BaselineNotBeaten"


def test_lower_is_better_metrics_promote_the_smaller_error(
    run_train: TrainCli, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    def ridge(alpha: float) -> dict[str, Any]:
        return _spec(
            bucket,
            model="diabetes",
            dataset={"uri": "builtin://diabetes"},
            estimator={"type": "sklearn.linear_model.Ridge", "params": {"alpha": alpha}},
            evaluation={"metrics": ["rmse", "r2"]},
        )

    _, heavy, _ = run_train(ridge(1000.0), tmp_path / "t1")
    _, light, _ = run_train(ridge(0.1), tmp_path / "t2")
    assert light["metrics"]["rmse"] < heavy["metrics"]["rmse"]
    assert light["promoted"] is True
    assert "rmse" in light["decision"] and "beats champion v1" in light["decision"]
    _, again, _ = run_train(ridge(1000.0), tmp_path / "t3")
    assert again["promoted"] is False
    assert registry.champion("diabetes") == "2"


def test_promote_false_and_baseline_none(
    run_train: TrainCli, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    _, first, _ = run_train(_spec(bucket, promote=False), tmp_path / "t1")
    assert (first["blessed"], first["promoted"]) == (True, False)
    assert registry.champion("iris") is None
    run_train(_spec(bucket), tmp_path / "t2")  # now v2 is champion
    weak = _spec(
        bucket,
        estimator={"type": LOGREG, "params": {"max_iter": 1}},
        evaluation={"baseline": "none"},
    )
    _, third, _ = run_train(weak, tmp_path / "t3")
    assert third["baseline"] is None
    assert (third["blessed"], third["promoted"]) == (True, True)  # judged on gates alone
    assert registry.champion("iris") == "3"


def test_a_champion_without_todays_features_is_not_comparable(
    run_train: TrainCli, s3_client: S3Client, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    table = _iris_table()
    uri = _upload(s3_client, bucket, "iris.csv", table.to_csv(index=False).encode())
    spec = _spec(bucket, dataset={"uri": uri, "target": "species"})
    _, first, _ = run_train(spec, tmp_path / "t1")
    assert first["promoted"] is True

    renamed = table.rename(columns={"sepal_length": "sepal_len"})
    uri = _upload(s3_client, bucket, "renamed.csv", renamed.to_csv(index=False).encode())
    weak = _spec(
        bucket,
        dataset={"uri": uri, "target": "species"},
        estimator={"type": LOGREG, "params": {"max_iter": 1}},
        evaluation={"gates": [{"metric": "accuracy", "min": 0.5}]},
    )
    _, second, _ = run_train(weak, tmp_path / "t2")
    note = "champion v1 not comparable: features missing from the data: sepal_length"
    assert second["baseline"] == {
        "version": "1",
        "metrics": {},
        "comparable": False,
        "note": note,
    }
    assert second["comparison"] == {
        "championVersion": "1",
        "verdict": "NotComparable",
        "reason": note,
    }
    # Fail closed by default (onIncomparableChampion: Block).
    assert (second["blessed"], second["promoted"]) == (False, False)
    assert second["blessedReason"] == "ChampionNotComparable"
    assert registry.champion("iris") == "1"

    weak["evaluation"]["onIncomparableChampion"] = "GatesOnly"  # the older rule, by choice
    _, third, _ = run_train(weak, tmp_path / "t3")
    assert (third["blessed"], third["promoted"]) == (True, True)
    assert "champion v1 not comparable" in third["decision"]
    assert registry.champion("iris") == "3"

    builtin = _spec(bucket)  # target "target" instead of "species"
    _, fourth, _ = run_train(builtin, tmp_path / "t4")
    assert fourth["baseline"]["comparable"] is False
    assert fourth["baseline"]["note"] == (
        "champion v3 not comparable: target species differs from target"
    )


def test_spec_file_yaml_manifest_and_bucket_precedence(
    bucket: str, s3_client: S3Client, tmp_path: Path
) -> None:
    other = f"{bucket}-x"[:63]
    s3_client.create_bucket(Bucket=other)
    manifest = {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": "iris-1"},
        "spec": _spec(bucket),
    }
    path = tmp_path / "tj.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = CliRunner().invoke(
        main,
        [
            "train",
            "--spec-file",
            str(path),
            "--termination-log",
            str(tmp_path / "t"),
            "--bucket",
            other,
            "--prefix",
            "elsewhere",
        ],
    )
    assert result.exit_code == 0, result.output
    message = json.loads((tmp_path / "t").read_text())
    assert message["artifactUri"] == f"s3://{other}/elsewhere/iris/versions/1/"
    assert Registry(s3_client, bucket, "ctrain").list_versions("iris") == []


def _bad_iris_csv() -> bytes:
    frame = _iris_table()
    frame.loc[[0, 1, 2], "sepal_length"] = 25.0
    frame.loc[3, "sepal_length"] = -1.0
    frame.loc[[4, 5], "petal_width"] = np.nan
    frame.loc[[6, 7, 8, 9], "species"] = "dog"
    return frame.to_csv(index=False).encode()


def test_bad_data_fails_validation_with_every_rule(
    run_train: TrainCli, s3_client: S3Client, bucket: str, registry: Registry, tmp_path: Path
) -> None:
    uri = _upload(s3_client, bucket, "bad.csv", _bad_iris_csv())
    dataset = {
        "uri": uri,
        "target": "species",
        "expectations": {
            "minRows": 200,
            "columns": {
                "sepal_length": {"type": "float", "min": 0, "max": 20},
                "petal_width": {"type": "float", "nullable": False},
                "species": {"allowed": ["setosa", "versicolor", "virginica"]},
                "color": {"type": "category"},
            },
        },
    }
    code, message, _ = run_train(_spec(bucket, dataset=dataset), tmp_path / "t")
    assert code == 11  # EXIT_INVALID_DATA: not retried
    assert (message["ok"], message["reason"]) == (False, "DataValidationFailed")
    text = message["message"]
    assert "dataset: 150 rows, fewer than minRows 200" in text
    assert "column sepal_length: 3 values above max 20.0" in text
    assert "column sepal_length: 1 value below min 0.0" in text
    assert "column petal_width: 2 null values (nullable: false)" in text
    assert "column species: 4 values not in allowed [setosa, versicolor, virginica]" in text
    assert "'dog'" in text
    assert "column color: missing from the dataset" in text
    assert registry.list_versions("iris") == []


@pytest.mark.parametrize(
    ("change", "reason", "fragments"),
    [
        (
            {"estimator": {"type": "sklearn.ensemble.IsolationForest"}},
            "UnknownEstimator",
            ["IsolationForest", "not an allowed estimator"],
        ),
        (
            {"estimator": {"type": LOGREG, "params": {"C": 1.0, "colour": "red"}}},
            "InvalidParams",
            ["unknown parameters for", "colour", "valid parameters: C, class_weight"],
        ),
        (
            {"estimator": {"type": LOGREG, "params": {"C": -1}}},
            "InvalidParams",
            ["'C' parameter of LogisticRegression"],
        ),
        (
            {
                "estimator": {"type": "sklearn.svm.LinearSVC"},
                "evaluation": {"metrics": ["log_loss"]},
            },
            "InvalidSpec",
            ["log_loss need predict_proba"],
        ),
        ({"model": "Not_A_Label"}, "InvalidSpec", ["model"]),
        (
            {"evaluation": {"metrics": ["rmse"]}},
            "InvalidSpec",
            ["do not apply to classification"],
        ),
    ],
)
def test_spec_failures(
    run_train: TrainCli,
    bucket: str,
    registry: Registry,
    tmp_path: Path,
    change: dict[str, Any],
    reason: str,
    fragments: list[str],
) -> None:
    code, message, _ = run_train(_spec(bucket, **change), tmp_path / "t")
    assert code == 10  # EXIT_INVALID_SPEC: not retried
    assert (message["ok"], message["reason"]) == (False, reason)
    for fragment in fragments:
        assert fragment in message["message"]
    assert registry.list_versions("iris") == []


def test_missing_and_unreadable_datasets(
    run_train: TrainCli, s3_client: S3Client, bucket: str, tmp_path: Path
) -> None:
    missing = {"uri": f"s3://{bucket}/nope.csv", "target": "species"}
    code, message, _ = run_train(_spec(bucket, dataset=missing), tmp_path / "t1")
    assert (code, message["reason"]) == (11, "DatasetNotFound")
    assert f"s3://{bucket}/nope.csv" in message["message"]

    no_bucket = {"uri": "s3://no-such-datasets/iris.csv", "target": "species"}
    code, message, _ = run_train(_spec(bucket, dataset=no_bucket), tmp_path / "t2")
    assert (code, message["reason"]) == (11, "DatasetNotFound")

    uri = _upload(s3_client, bucket, "broken.parquet", b"this is not parquet")
    broken = {"uri": uri, "target": "species"}
    code, message, _ = run_train(_spec(bucket, dataset=broken), tmp_path / "t3")
    assert (code, message["reason"]) == (11, "DatasetUnreadable")
    assert "parquet" in message["message"]


def test_unusable_input_never_ends_in_a_bare_traceback(
    run_train: TrainCli, bucket: str, tmp_path: Path
) -> None:
    code, message, _ = run_train("{not json", tmp_path / "t1")
    assert (code, message["reason"]) == (10, "InvalidSpec")
    code, message, _ = run_train("[1, 2]", tmp_path / "t2")
    assert (code, message["reason"]) == (10, "InvalidSpec")
    result = CliRunner().invoke(main, ["train", "--termination-log", str(tmp_path / "t3")])
    assert result.exit_code == 10
    assert json.loads((tmp_path / "t3").read_text()) == {
        "ok": False,
        "reason": "InvalidSpec",
        "message": "give one of --spec-json or --spec-file",
    }


def test_a_missing_registry_bucket_is_a_storage_error(run_train: TrainCli, tmp_path: Path) -> None:
    code, message, _ = run_train(_spec("no-such-registry"), tmp_path / "t")
    assert (code, message["reason"]) == (1, "StorageError")
    assert "NoSuchBucket" in message["message"]
