"""TrainingJobs applied with kubectl, reconciled by the real operator, trained by real pods."""

import io
import json
import uuid

import httpx
import pytest
from kubernetes import client
from sklearn.datasets import load_iris

from kubehelpers import apply, get, kubectl, reasons_until, settle, wait_for, wait_phase

pytestmark = pytest.mark.integration
PLURAL = "trainingjobs"


@pytest.fixture
def custom(api_client) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def unique_model(prefix: str = "iris") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def trainingjob(
    name: str,
    model: str,
    *,
    uri: str = "builtin://iris",
    target: str | None = None,
    estimator: dict | None = None,
    **spec_extra,
) -> dict:
    dataset = {"uri": uri}
    if target:
        dataset["target"] = target
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": dataset,
            "estimator": estimator
            or {"type": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
            **spec_extra,
        },
    }


def iris_csv(shift: float = 0.0) -> bytes:
    frame = load_iris(as_frame=True).frame
    frame["species"] = [["setosa", "versicolor", "virginica"][t] for t in frame.pop("target")]
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    frame.iloc[:, :4] += shift
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def test_builtin_iris_trains_registers_and_reports(
    sandbox, custom, core, s3, operator, ml_namespace
):
    model = unique_model()
    apply(
        sandbox,
        ml_namespace,
        trainingjob("iris-1", model, evaluation={"gates": [{"metric": "accuracy", "min": 0.8}]}),
    )
    body = wait_phase(custom, PLURAL, ml_namespace, "iris-1", ("Succeeded", "Failed"))
    status = body["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["modelVersion"] == "1"
    assert status["artifactUri"] == f"s3://models/ctrain/{model}/versions/1/"
    assert status["metrics"]["accuracy"] >= 0.8
    assert status["blessed"] is True and status["promoted"] is True
    assert status["dataFingerprint"].startswith("sha256:")
    assert status["observedGeneration"] == body["metadata"]["generation"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "Ready": "True",
        "Complete": "True",  # batch-style terminal condition (kubectl wait)
        "Reconciling": "False",  # kstatus: Current
        "Stalled": "False",
        "DataValidated": "True",
        "Trained": "True",
        "Blessed": "True",
    }
    keys = {
        o["Key"] for o in s3.list_objects_v2(Bucket="models", Prefix=f"ctrain/{model}/")["Contents"]
    }
    prefix = f"ctrain/{model}/versions/1/"
    assert {prefix + "model.skops", prefix + "metadata.json", prefix + "reference.json"} <= keys
    alias = s3.get_object(Bucket="models", Key=f"ctrain/{model}/aliases/champion")["Body"].read()
    assert alias.decode().strip() == "1"
    reasons = reasons_until(core, ml_namespace, "iris-1", "Succeeded", "TrainingSucceeded")
    assert "Succeeded" in reasons and "TrainingSucceeded" in reasons
    table = kubectl(sandbox, "get", "tj", "iris-1", "-n", ml_namespace).stdout
    assert "Succeeded" in table and model in table
    assert "iris-1" in kubectl(sandbox, "get", "ctrain", "-n", ml_namespace).stdout
    metrics = httpx.get(f"http://127.0.0.1:{operator.metrics_port}/metrics").text
    assert 'ctrain_objects{kind="TrainingJob",phase="Succeeded"}' in metrics
    assert 'ctrain_promotions_total{model="' + model + '"} 1.0' in metrics
    assert "ctrain_trainings_started_total" in metrics


def test_csv_from_s3_with_expectations_and_champion_comparison(sandbox, custom, s3, ml_namespace):
    model = unique_model("flowers")
    key = f"{model}/iris.csv"
    s3.put_object(Bucket="datasets", Key=key, Body=iris_csv())
    expectations = {
        "minRows": 100,
        "columns": {
            "sepal_length": {"type": "float", "min": 0, "max": 20, "nullable": False},
            "species": {"type": "category", "allowed": ["setosa", "versicolor", "virginica"]},
        },
    }
    dataset_extra = {"expectations": expectations}
    good = trainingjob("good", model, uri=f"s3://datasets/{key}", target="species")
    good["spec"]["dataset"].update(dataset_extra)
    apply(sandbox, ml_namespace, good)
    first = wait_phase(custom, PLURAL, ml_namespace, "good", ("Succeeded", "Failed"))["status"]
    assert first["phase"] == "Succeeded", first.get("message")
    assert first["promoted"] is True

    worse = trainingjob(
        "worse",
        model,
        uri=f"s3://datasets/{key}",
        target="species",
        estimator={"type": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 1}},
    )
    apply(sandbox, ml_namespace, worse)
    second = wait_phase(custom, PLURAL, ml_namespace, "worse", ("Succeeded", "Failed"))["status"]
    assert second["phase"] == "Succeeded", second.get("message")
    assert second["baseline"]["version"] == first["modelVersion"]
    assert second["blessed"] is False and second["promoted"] is False
    blessed = next(c for c in second["conditions"] if c["type"] == "Blessed")
    assert blessed["status"] == "False" and blessed["reason"] == "BaselineNotBeaten"
    alias = s3.get_object(Bucket="models", Key=f"ctrain/{model}/aliases/champion")["Body"].read()
    assert alias.decode().strip() == first["modelVersion"]  # the champion was kept


def test_data_failing_its_expectations_fails_with_column_and_rule(
    sandbox, custom, s3, ml_namespace
):
    model = unique_model()
    key = f"{model}/shifted.csv"
    s3.put_object(Bucket="datasets", Key=key, Body=iris_csv(shift=30.0))
    job = trainingjob("bad-data", model, uri=f"s3://datasets/{key}", target="species")
    job["spec"]["dataset"]["expectations"] = {
        "columns": {"sepal_length": {"type": "float", "max": 20}}
    }
    apply(sandbox, ml_namespace, job)
    status = wait_phase(custom, PLURAL, ml_namespace, "bad-data", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Failed"
    validated = next(c for c in status["conditions"] if c["type"] == "DataValidated")
    assert validated["status"] == "False" and validated["reason"] == "DataValidationFailed"
    assert "sepal_length" in validated["message"] and "max" in validated["message"]


@pytest.mark.parametrize(
    ("name", "spec_change", "reason", "fragment"),
    [
        (
            "bad-params",
            {
                "estimator": {
                    "type": "sklearn.linear_model.LogisticRegression",
                    "params": {"not_a_param": 1},
                }
            },
            "InvalidParams",
            "not_a_param",
        ),
        (
            "no-dataset",
            {"dataset": {"uri": "s3://datasets/does/not/exist.csv", "target": "species"}},
            "DatasetNotFound",
            "exist.csv",
        ),
    ],
)
def test_trainer_failures_are_clear_and_final(
    sandbox, custom, ml_namespace, name, spec_change, reason, fragment
):
    job = trainingjob(name, unique_model())
    job["spec"].update(spec_change)
    job["spec"]["backoffLimit"] = 0
    apply(sandbox, ml_namespace, job)
    status = wait_phase(custom, PLURAL, ml_namespace, name, ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Failed"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == reason, status["message"]
    assert fragment in status["message"]


@pytest.mark.parametrize(
    ("spec_change", "fragment"),
    [
        ({"estimator": {"type": "os.system"}}, "spec.estimator.type"),
        ({"evaluation": {"testSize": 1.5}}, "testSize"),
        ({"evaluation": {"gates": [{"metric": "vibes", "min": 1}]}}, "metric"),
        ({"model": "Not_A_DNS_Label"}, "spec.model"),
    ],
)
def test_apiserver_rejects_invalid_specs(sandbox, ml_namespace, spec_change, fragment):
    job = trainingjob("invalid", unique_model())
    job["spec"].update(spec_change)
    import yaml

    result = kubectl(
        sandbox, "apply", "-n", ml_namespace, "-f", "-", stdin=yaml.safe_dump(job), check=False
    )
    assert result.returncode != 0
    assert fragment in result.stderr, result.stderr


def test_spec_is_immutable(sandbox, custom, ml_namespace):
    model = unique_model()
    apply(sandbox, ml_namespace, trainingjob("fixed", model))
    changed = trainingjob("fixed", model, estimator={"type": "sklearn.tree.DecisionTreeClassifier"})
    import yaml

    result = kubectl(
        sandbox, "apply", "-n", ml_namespace, "-f", "-", stdin=yaml.safe_dump(changed), check=False
    )
    assert result.returncode != 0
    assert "immutable" in result.stderr


def test_operator_killed_mid_run_makes_exactly_one_job(
    sandbox, custom, batch, operator, ml_namespace
):
    model = unique_model()
    apply(sandbox, ml_namespace, trainingjob("restart", model))
    wait_for(lambda: batch.list_namespaced_job(ml_namespace).items, what="the training Job")
    operator.kill()
    operator.start()
    status = wait_phase(custom, PLURAL, ml_namespace, "restart", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    operator.kill()
    operator.start()
    settle(5)
    jobs = batch.list_namespaced_job(ml_namespace).items
    assert [j.metadata.name for j in jobs] == ["restart-train"]
    assert get(custom, PLURAL, ml_namespace, "restart")["status"] == status


def test_finished_job_is_cleaned_up_after_ttl_and_status_stays(
    sandbox, custom, batch, ml_namespace
):
    apply(
        sandbox,
        ml_namespace,
        trainingjob("short-lived", unique_model(), ttlSecondsAfterFinished=30),
    )
    status = wait_phase(custom, PLURAL, ml_namespace, "short-lived", ("Succeeded", "Failed"))[
        "status"
    ]
    assert status["phase"] == "Succeeded", status.get("message")
    wait_for(
        lambda: not batch.list_namespaced_job(ml_namespace).items,
        timeout=120,
        what="the Job removed by its TTL",
    )
    settle(3)
    assert get(custom, PLURAL, ml_namespace, "short-lived")["status"] == status


def test_bad_object_does_not_block_others(sandbox, custom, ml_namespace):
    """A TrainingJob the operator cannot run fails alone; the next one still trains."""
    missing_secret = trainingjob(
        "no-secret", unique_model(), storage={"bucket": "models", "secretRef": "nope"}
    )
    apply(sandbox, ml_namespace, missing_secret)
    apply(sandbox, ml_namespace, trainingjob("fine", unique_model()))
    status = wait_phase(custom, PLURAL, ml_namespace, "fine", ("Succeeded", "Failed"))["status"]
    assert status["phase"] == "Succeeded"
    stuck = wait_for(
        lambda: (
            "nope"
            in (
                get(custom, PLURAL, ml_namespace, "no-secret").get("status", {}).get("message")
                or ""
            )
            and get(custom, PLURAL, ml_namespace, "no-secret")
        ),
        timeout=60,
        what="the missing Secret named in status",
    )
    assert stuck["status"]["phase"] == "Pending"
    assert json.dumps(stuck["status"]).count("AWS_SECRET_ACCESS_KEY") == 0
