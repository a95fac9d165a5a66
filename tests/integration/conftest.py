"""Fixtures for tests that need the real operator process and a namespace ready for training."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from ctrain_dev import host
from ctrain_dev.sandbox import controlplane
from ctrain_dev.sandbox import operator as sandbox_operator
from ctrain_dev.sandbox.sandbox import State
from kubehelpers import make_namespace


class OperatorProcess:
    """The real `ctrain operator` against the test sandbox; restartable mid-test."""

    def __init__(self, sandbox: State, log_dir: Path) -> None:
        self.sandbox, self.log_dir = sandbox, log_dir
        self.process: host.Process | None = None
        self.starts = 0
        self.metrics_port = controlplane.Ports.free().s3  # any free port

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"operator-{self.starts}.log"
        self.process = host.spawn(
            "ctrain-operator",
            sandbox_operator.operator_argv(),
            log,
            env={
                **sandbox_operator.operator_env(self.sandbox),
                "CTRAIN_METRICS_PORT": str(self.metrics_port),
            },
        )

    def kill(self) -> None:
        """SIGKILL: the harshest restart, nothing gets flushed."""
        assert self.process is not None
        host.stop(self.process, grace_seconds=0)

    def stop(self) -> None:
        if self.process is not None:
            host.stop(self.process)

    def log(self) -> str:
        return "".join(p.read_text() for p in sorted(self.log_dir.glob("operator-*.log")))


@pytest.fixture(scope="session")
def operator(sandbox: State, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    sandbox_operator.apply_crds(sandbox)
    process = OperatorProcess(sandbox, tmp_path_factory.mktemp("operator"))
    process.start()
    yield process
    process.stop()


@pytest.fixture
def ml_namespace(
    core: client.CoreV1Api,
    sandbox: State,
    request: pytest.FixtureRequest,
    operator: OperatorProcess,
) -> Iterator[str]:
    """A restricted namespace with the S3 credentials Secret, watched by the operator."""
    name = make_namespace(
        core, f"t-{request.node.name}", {"pod-security.kubernetes.io/enforce": "restricted"}
    )
    sandbox_operator.credentials_secret(sandbox, name)
    yield name
    core.delete_namespace(name)
