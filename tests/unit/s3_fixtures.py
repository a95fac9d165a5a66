"""A real S3 API over HTTP for the registry and trainer tests: moto's threaded server.

Kept out of conftest.py (owned by the lead); test modules load these fixtures with
``pytest_plugins = ["s3_fixtures"]``. One server and one environment per session; every
test gets its own bucket, so tests never see each other's objects. Nothing here mocks
boto3: requests go over HTTP to the server. `train_cli` runs ``ctrain train`` in-process.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from moto.server import ThreadedMotoServer

from ctrain.cli import main
from ctrain.registry import Registry
from ctrain.storage import S3Client, make_s3_client

__all__ = ["bucket", "moto_endpoint", "registry", "run_train", "s3_client", "s3_env", "train_cli"]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto S3 server on a free local port, for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_env(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """The environment a training pod gets, pointing at the moto server (whole session)."""
    env = {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "CTRAIN_S3_ADDRESSING_STYLE": "path",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "CTRAIN_BUCKET", "CTRAIN_PREFIX"):
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="session")
def s3_client(s3_env: dict[str, str]) -> S3Client:
    """A client built exactly as ctrain builds it, from the environment (thread-safe)."""
    return make_s3_client()


@pytest.fixture
def bucket(s3_client: S3Client) -> str:
    """A fresh, empty bucket for this test."""
    name = f"test-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def registry(s3_client: S3Client, bucket: str) -> Registry:
    """A registry under the default prefix of the test's bucket."""
    return Registry(s3_client, bucket, "ctrain")


@pytest.fixture
def run_train(s3_env: dict[str, str]) -> Any:
    """`train_cli`, as a fixture (test modules then need no import of this module)."""
    return train_cli


def train_cli(
    spec: dict[str, Any] | str,
    termination_log: Path,
    *extra: str,
    env: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], str]:
    """Run ``ctrain train --spec-json`` in-process; return (exit code, message, stderr).

    The message is read back from the termination-log file, as the kubelet would.
    """
    spec_json = spec if isinstance(spec, str) else json.dumps(spec)
    result = CliRunner(env=env).invoke(
        main,
        ["train", "--spec-json", spec_json, "--termination-log", str(termination_log), *extra],
        catch_exceptions=False,
    )
    message = json.loads(termination_log.read_text())
    assert json.loads(result.stdout) == message
    return result.exit_code, message, result.stderr
