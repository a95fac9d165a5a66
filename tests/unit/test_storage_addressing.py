"""`spec.storage.addressingStyle` reaches the S3 client of every role, over real HTTP.

Each role builds its client the way it does in the cluster: the operator from the object's
storage (`controller.storage.clients`), the trainer and the server from the environment
their pod gets (the Job's and the Deployment's env, built by the operator's builders).
Every request goes to moto's server, which also acts as the HTTP proxy: a virtual-style
host name (`models.localhost`) needs no DNS, and moto reads the bucket from the Host
header, so both styles are real round trips; the URLs each client sent tell the style.
"""

import os
from typing import Any

import pytest

from ctrain.api import ModelDeploymentSpec, StorageSpec, TrainingJobSpec
from ctrain.commands.train import _client_for
from ctrain.controller.config import OperatorConfig, StorageGrant
from ctrain.controller.modeldeployment.builders import build_deployment
from ctrain.controller.storage.clients import S3Clients, location
from ctrain.controller.trainingjob.builders import build_job, trainer_spec
from ctrain.storage import S3Client, make_s3_client

pytest_plugins = ["s3_fixtures"]
pytestmark = pytest.mark.unit

BUCKET = "addressing"
BODY = {
    "apiVersion": "ctrain.dev/v1alpha1",
    "kind": "TrainingJob",
    "metadata": {"name": "x", "namespace": "ml", "uid": "u-1"},
}


@pytest.fixture
def endpoint(moto_endpoint: str, s3_env: dict[str, str], monkeypatch: Any) -> str:
    port = moto_endpoint.rsplit(":", 1)[1]
    monkeypatch.setenv("HTTP_PROXY", moto_endpoint)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.delenv("no_proxy", raising=False)
    url = f"http://localhost:{port}"
    make_s3_client(endpoint_url=url, addressing_style="path").create_bucket(Bucket=BUCKET)
    return url


def urls_of(client: S3Client) -> list[str]:
    """Write and read one object; the URLs the client sent."""
    sent: list[str] = []
    client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    client.put_object(Bucket=BUCKET, Key="probe", Body=b"1")
    assert client.get_object(Bucket=BUCKET, Key="probe")["Body"].read() == b"1"
    return sent


def assert_style(urls: list[str], style: str, url: str) -> None:
    host = url.split("//", 1)[1]
    expected = (
        f"http://{host}/{BUCKET}/probe" if style == "path" else f"http://{BUCKET}.{host}/probe"
    )
    assert urls == [expected, expected]


def pod_env(container: dict[str, Any], monkeypatch: Any) -> None:
    """The container's plain env in this process (Secret references stay with s3_env)."""
    for item in container["env"]:
        if "value" in item:
            monkeypatch.setenv(item["name"], item["value"])


STYLES = ["path", "virtual"]


@pytest.mark.parametrize("style", STYLES)
def test_the_operator(endpoint: str, style: str) -> None:
    storage = StorageSpec(bucket=BUCKET, endpoint=endpoint, addressing_style=style)
    config = OperatorConfig(
        s3_allow_http=True,  # moto over plain HTTP
        s3_allowed=(StorageGrant(endpoint, (BUCKET,)),),
    )
    where = location(storage, config)
    assert_style(urls_of(S3Clients(config).access(where.endpoint, BUCKET)), style, endpoint)


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("where", ["object", "operator default"])
def test_the_trainer(endpoint: str, style: str, where: str, monkeypatch: Any) -> None:
    storage: dict[str, Any] = {"bucket": BUCKET, "endpoint": endpoint}
    config = OperatorConfig()
    if where == "object":
        storage["addressingStyle"] = style
    else:
        config = OperatorConfig(s3_addressing_style=style)
    spec = TrainingJobSpec.parse(
        {
            "model": "m",
            "dataset": {"uri": "builtin://iris"},
            "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
            "storage": storage,
        }
    )
    job = build_job(BODY, spec, config)
    pod_env(job["spec"]["template"]["spec"]["containers"][0], monkeypatch)
    # What `ctrain train` parses from the spec it is handed, then builds its client from.
    received = TrainingJobSpec.parse(trainer_spec(spec, config))
    assert_style(urls_of(_client_for(received.storage)), style, endpoint)


@pytest.mark.parametrize("style", STYLES)
def test_the_server(endpoint: str, style: str, monkeypatch: Any) -> None:
    spec = ModelDeploymentSpec.parse(
        {
            "model": "m",
            "storage": {"bucket": BUCKET, "endpoint": endpoint, "addressingStyle": style},
        }
    )
    deployment = build_deployment(
        BODY, spec, OperatorConfig(), track="stable", version="1", replicas=1
    )
    pod_env(deployment["spec"]["template"]["spec"]["containers"][0], monkeypatch)
    # `ctrain serve` builds its registry and prediction-log clients from the environment.
    assert_style(urls_of(make_s3_client(os.environ)), style, endpoint)
