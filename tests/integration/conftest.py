"""Fixtures for tests that need the real operator process and a namespace ready for training."""

import json
import socket
import threading
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

    def __init__(self, sandbox: State, log_dir: Path, also_allowed: tuple[str, ...] = ()) -> None:
        self.sandbox, self.log_dir = sandbox, log_dir
        self.also_allowed = also_allowed  # more S3 endpoints the operator may contact
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
                **(env := sandbox_operator.operator_env(self.sandbox)),
                "CTRAIN_S3_ALLOWED": json.dumps(
                    json.loads(env["CTRAIN_S3_ALLOWED"])
                    + [{"endpoint": url, "buckets": ["*"]} for url in self.also_allowed]
                ),
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
def silent_endpoint() -> Iterator[str]:
    """An S3 endpoint that accepts every connection and never sends a byte (allowed to the
    session's operator, so tests see what a hung store does, not the allowlist)."""
    server = socket.create_server(("127.0.0.1", 0), backlog=128)
    server.settimeout(0.2)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


@pytest.fixture(scope="session")
def operator(
    sandbox: State, tmp_path_factory: pytest.TempPathFactory, silent_endpoint: str
) -> Iterator[OperatorProcess]:
    sandbox_operator.apply_crds(sandbox)
    process = OperatorProcess(
        sandbox, tmp_path_factory.mktemp("operator"), also_allowed=(silent_endpoint,)
    )
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
