"""The ctrain image as the cluster runs it: non-root, read-only root filesystem.

`make image` builds the Dockerfile (`ctrain dev image`); these tests run the result the
way a restricted pod does (`--read-only`, `--user 65532`, every capability dropped, no
privilege escalation) and use it for all three roles a user meets first: the command
line, a training run of the builtin iris data set into an S3 API (moto's server in a
container beside it), and the server answering an Open Inference Protocol request with
tritonclient. Skipped, saying why, only where no container engine can run.
"""

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest

from ctrain_dev.containers import engine as engine_module
from ctrain_dev.containers import image as image_module
from ctrain_dev.containers.errors import ContainersError
from ctrain_dev.containers.image import DEFAULT_TAG

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("CTRAIN_E2E_IMAGE", DEFAULT_TAG)
S3_KEYS = {"AWS_ACCESS_KEY_ID": "image-test", "AWS_SECRET_ACCESS_KEY": "image-test-secret"}
# What a restricted pod gets: read-only root, the numeric non-root user, no capabilities.
RESTRICTED = [
    "--read-only",
    "--user=65532:65532",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
]


@pytest.fixture(scope="module")
def engine() -> engine_module.Engine:
    try:
        return engine_module.find()
    except ContainersError as error:
        pytest.skip(f"no container engine can run here: {error}")


@pytest.fixture(scope="module")
def image(engine: engine_module.Engine) -> str:
    """The image of this checkout (`make image`; Docker's cache makes a rebuild quick)."""
    return image_module.build(ROOT, IMAGE)


@pytest.fixture(scope="module")
def s3(engine: engine_module.Engine, image: str) -> Iterator[dict[str, str]]:
    """moto's server in a container: its URL for containers and for this machine."""
    s3_image = image_module.build_s3(ROOT, image)
    name = f"ctrain-image-test-s3-{uuid.uuid4().hex[:6]}"
    engine.docker(
        "run",
        "--detach",
        "--rm",
        "--name",
        name,
        *RESTRICTED,
        "--publish=127.0.0.1::5000",
        s3_image,
    )
    try:
        address = engine.docker(
            "inspect", "--format", "{{.NetworkSettings.IPAddress}}", name
        ).strip()
        port = engine.docker("port", name, "5000/tcp").split(":")[-1].strip()
        here = f"http://127.0.0.1:{port}"
        client = boto3.client("s3", endpoint_url=here, region_name="us-east-1", **_keys())
        _wait(lambda: client.list_buckets() is not None, "moto's server")
        client.create_bucket(Bucket="models")
        yield {"containers": f"http://{address}:5000", "here": here}
    finally:
        engine.docker("rm", "--force", name, check=False)


def _keys() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_KEYS["AWS_SECRET_ACCESS_KEY"],
    }


def _wait(check: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception as error:  # noqa: BLE001 - kept and reported on timeout
            last = error
        time.sleep(0.5)
    raise AssertionError(f"{what} not ready after {timeout:.0f}s: {last!r}")


def _storage_env(s3: dict[str, str]) -> list[str]:
    pairs = {
        **S3_KEYS,
        "AWS_ENDPOINT_URL": s3["containers"],
        "AWS_DEFAULT_REGION": "us-east-1",
        # As the operator configures its pods: one bucket and prefix for every role.
        "CTRAIN_BUCKET": "models",
        "CTRAIN_PREFIX": "ctrain",
    }
    return [f"--env={key}={value}" for key, value in pairs.items()]


def test_runs_as_the_non_root_user_with_a_read_only_root(engine, image):
    config = json.loads(engine.docker("image", "inspect", "--format", "{{json .Config}}", image))
    assert config["User"] == "65532:65532"
    assert "/tmp" in (config.get("Volumes") or {})
    identity = engine.docker(
        "run",
        "--rm",
        *RESTRICTED,
        "--entrypoint=sh",
        image,
        "-c",
        "id -u; touch /opt/ctrain/x 2>&1 || true; touch /tmp/x && echo tmp-writable",
    )
    assert identity.splitlines()[0] == "65532"
    assert "Read-only file system" in identity
    assert identity.strip().endswith("tmp-writable")


def test_help(engine, image):
    out = engine.docker("run", "--rm", *RESTRICTED, image, "--help")
    for command in ("operator", "train", "serve", "models"):
        assert command in out


def test_train_then_serve_answers_a_prediction(engine, image, s3):
    import tritonclient.http as triton

    spec = {
        "model": "iris",
        "dataset": {"uri": "builtin://iris"},
        "estimator": {
            "type": "sklearn.linear_model.LogisticRegression",
            "params": {"max_iter": 200},
        },
        "evaluation": {"metrics": ["accuracy"], "gates": [{"metric": "accuracy", "min": 0.8}]},
        "promote": True,
    }
    result = json.loads(
        engine.docker(
            "run",
            "--rm",
            *RESTRICTED,
            *_storage_env(s3),
            image,
            "train",
            "--spec-json",
            json.dumps(spec),
        )
        .strip()
        .splitlines()[-1]
    )
    assert result["ok"] is True, result
    assert result["version"] == "1"
    assert result["blessed"] is True and result["promoted"] is True

    name = f"ctrain-image-test-serve-{uuid.uuid4().hex[:6]}"
    engine.docker(
        "run",
        "--detach",
        "--name",
        name,
        *RESTRICTED,
        *_storage_env(s3),
        "--publish=127.0.0.1::8080",
        image,
        "serve",
        "--model",
        "iris",
    )
    try:
        port = engine.docker("port", name, "8080/tcp").split(":")[-1].strip()
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        _wait(lambda: client.is_model_ready("iris"), "ctrain serve", timeout=120)
        rows = triton.InferInput("input-0", [2, 4], "FP64")
        rows.set_data_from_numpy(np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]))
        predictions = client.infer("iris", [rows]).as_numpy("predict")
        # A setosa and a virginica flower: two rows, two different classes.
        assert predictions is not None and len(predictions) == 2
        assert predictions[0] != predictions[1]
    finally:
        logs = engine.docker("logs", "--tail=20", name, check=False)
        engine.docker("rm", "--force", name, check=False)
        print(logs)
