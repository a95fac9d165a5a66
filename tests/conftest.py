"""Shared fixtures: one sandbox per test session, a namespace per test.

The integration tests use their own sandbox directory (`$CTRAIN_TEST_SANDBOX_DIR`, default
`~/.local/state/ctrain/test-sandbox`), started without the operator: tests that need the
operator run the real `ctrain operator` process themselves. A sandbox that is already
running there is reused; one the session started is stopped at the end unless
`CTRAIN_KEEP_SANDBOX=1`.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from kubernetes import client, config

from ctrain_dev.sandbox import sandbox as sandbox_module
from kubehelpers import make_namespace


def _test_sandbox_dir() -> Path:
    configured = os.environ.get("CTRAIN_TEST_SANDBOX_DIR")
    if configured:
        return Path(configured)
    return sandbox_module.default_dir().parent / "test-sandbox"


@pytest.fixture(scope="session")
def sandbox() -> Iterator[sandbox_module.State]:
    directory = _test_sandbox_dir()
    state = sandbox_module.running(directory)
    started_here = state is None
    if state is None:
        state = sandbox_module.up(directory, with_operator=False)
    yield state
    if started_here and os.environ.get("CTRAIN_KEEP_SANDBOX") != "1":
        sandbox_module.down(directory)


@pytest.fixture(scope="session")
def api_client(sandbox: sandbox_module.State) -> client.ApiClient:
    return config.new_client_from_config(str(sandbox.kubeconfig))


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture
def batch(api_client: client.ApiClient) -> client.BatchV1Api:
    return client.BatchV1Api(api_client)


@pytest.fixture
def namespace(core: client.CoreV1Api, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, labelled for Pod Security `restricted`."""
    name = make_namespace(
        core, f"t-{request.node.name}", {"pod-security.kubernetes.io/enforce": "restricted"}
    )
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def s3(sandbox: sandbox_module.State):  # type: ignore[no-untyped-def]
    env = sandbox.env()
    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )
