"""`ctrain dev up|down|status|env`: the lifecycle of one local sandbox.

A sandbox is a directory (``$CTRAIN_SANDBOX_DIR``, default ``~/.local/state/ctrain/sandbox``)
holding its PKI, etcd data, kubeconfigs, logs and ``state.json`` with the pid and
executable of every process it started. ``up`` is idempotent: a healthy sandbox is left
as it is. ``down`` stops each recorded process by its pid and removes the directory.

Its node is real: a kubelet with containerd and kube-proxy in a container
(`sandbox.realnode`), whose pods are containers of the checkout's image.
"""

import dataclasses
import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ctrain_dev import host
from ctrain_dev.sandbox import controlplane, preflight, realnode
from ctrain_dev.sandbox.binaries import Binaries, ensure_binaries, needs_build
from ctrain_dev.sandbox.pki import ensure_pki

NODE_NAME = "ctrain-node"
S3_ACCESS_KEY = "ctrain-sandbox"
S3_SECRET_KEY = "ctrain-sandbox-secret"
S3_REGION = "us-east-1"
BUCKETS = ("models", "datasets")

Say = Callable[[str], None]


def default_dir() -> Path:
    configured = os.environ.get("CTRAIN_SANDBOX_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ctrain" / "sandbox"


@dataclasses.dataclass
class State:
    """What `up` started, persisted as state.json in the sandbox directory."""

    directory: str
    ports: dict[str, int]
    pod_network: int
    processes: list[dict[str, Any]]
    bin_dirs: list[str]
    node_name: str = NODE_NAME
    image: str = ""  # the ctrain image the node's pods run

    @property
    def node(self) -> realnode.Layout:
        return realnode.Layout(self.pod_network, self.node_name)

    @property
    def path(self) -> Path:
        return Path(self.directory)

    @property
    def kubeconfig(self) -> Path:
        return self.path / "admin.kubeconfig"

    @property
    def host_ip(self) -> str:
        """The bridge address: the control plane and S3 listen here, pods route to it."""
        return host.host_ip(self.pod_network)

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.host_ip}:{self.ports['apiserver']}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host_ip}:{self.ports['s3']}"

    def process(self, name: str) -> host.Process | None:
        for record in self.processes:
            if record["name"] == name:
                return host.Process(**record)
        return None

    def save(self) -> None:
        (self.path / "state.json").write_text(json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, directory: Path) -> "State | None":
        try:
            recorded = json.loads((directory / "state.json").read_text())
        except FileNotFoundError:
            return None
        # An older sandbox recorded fields this one no longer has (its node kind).
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in recorded.items() if key in known})

    def env(self) -> dict[str, str]:
        """The environment a user (or a test) needs to talk to this sandbox."""
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_DEFAULT_REGION": S3_REGION,
        }


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def running(directory: Path | None = None) -> State | None:
    """The sandbox in `directory` if every process it started (and its node) is alive."""
    state = State.load(directory or default_dir())
    if state is None:
        return None
    if not all(host.Process(**record).alive() for record in state.processes):
        return None
    if not state.image or not realnode.running(state.node):
        return None  # no node container (or one of an older sandbox's kind): not usable
    return state


def up(
    directory: Path | None = None,
    say: Say = _stderr,
    with_operator: bool = True,
) -> State:
    """Start the sandbox (or return the running one)."""
    directory = directory or default_dir()
    current = running(directory)
    if current is not None:
        say(f"sandbox already running in {directory}")
        return current
    if State.load(directory) is not None:
        say("a previous sandbox is partly down; cleaning it up first")
        down(directory, say=lambda _m: None)
    started = time.monotonic()
    preflight.check(needs_build=needs_build())
    binaries = ensure_binaries(say)
    images = realnode.workload_images(say)
    directory.mkdir(parents=True, exist_ok=True)
    pod_network = _free_network()
    pki = ensure_pki(directory / "pki", NODE_NAME, host.host_ip(pod_network))
    state = State(
        directory=str(directory),
        ports=dataclasses.asdict(controlplane.Ports.free()),
        pod_network=pod_network,
        processes=[],
        bin_dirs=[str(path) for path in binaries.bin_dirs],
        image=images[0],
    )
    state.save()
    try:
        _start_all(state, binaries, pki, say, with_operator, images)
    except BaseException:
        say(f"sandbox failed to start; stopping what was started (logs in {directory / 'logs'})")
        _stop_processes(state, say=lambda _m: None)
        raise
    say(f"sandbox up in {time.monotonic() - started:.1f}s")
    return state


def _free_network() -> int:
    """A second octet whose bridge no other sandbox on this machine uses."""
    candidates = list(range(16, 251))
    random.shuffle(candidates)
    for candidate in candidates:
        if not host.link_exists(host.bridge_name(candidate)):
            return candidate
    raise RuntimeError("no free pod network: too many sandboxes on this machine")


def _start(
    state: State, name: str, argv: list[str], env: dict[str, str] | None = None
) -> host.Process:
    process = host.spawn(name, argv, state.path / "logs" / f"{name}.log", env=env)
    state.processes.append(dataclasses.asdict(process))
    state.save()
    return process


def _start_all(
    state: State, binaries: Binaries, pki: Path, say: Say, with_operator: bool, images: list[str]
) -> None:
    ports = controlplane.Ports(**state.ports)
    tls = controlplane.client_tls(pki)
    host.create_bridge(state.pod_network)

    say(f"starting etcd on 127.0.0.1:{ports.etcd_client}")
    etcd = _start(state, "etcd", controlplane.etcd_argv(binaries, state.path / "etcd", ports))
    controlplane.wait_http(
        f"http://127.0.0.1:{ports.etcd_client}/health", 60, alive=etcd.alive, process=etcd
    )

    say(f"starting kube-apiserver on {state.apiserver_url}")
    api = _start(
        state, "kube-apiserver", controlplane.apiserver_argv(binaries, pki, ports, state.host_ip)
    )
    controlplane.wait_http(
        f"{state.apiserver_url}/readyz", 120, context=tls, alive=api.alive, process=api
    )

    server = state.apiserver_url
    admin = controlplane.kubeconfig(server, pki, "ctrain-admin", "admin")
    controlplane.write_kubeconfig(state.kubeconfig, admin)
    kcm_config = controlplane.write_kubeconfig(
        state.path / "controller-manager.kubeconfig",
        controlplane.kubeconfig(
            server, pki, "system:kube-controller-manager", "controller-manager"
        ),
    )
    scheduler_config = controlplane.write_kubeconfig(
        state.path / "scheduler.kubeconfig",
        controlplane.kubeconfig(server, pki, "system:kube-scheduler", "scheduler"),
    )
    say("starting kube-controller-manager and kube-scheduler")
    _start(
        state,
        "kube-controller-manager",
        controlplane.controller_manager_argv(binaries, pki, kcm_config, ports),
    )
    _start(
        state, "kube-scheduler", controlplane.scheduler_argv(binaries, pki, scheduler_config, ports)
    )

    say(f"starting the S3 API (moto) on {state.s3_endpoint}")
    s3 = _start(
        state, "s3", [sys.executable, "-m", "moto.server", "-H", state.host_ip, "-p", str(ports.s3)]
    )
    controlplane.wait_http(f"{state.s3_endpoint}/moto-api/", 60, alive=s3.alive, process=s3)
    _create_buckets(state)

    realnode.start(state.node, pki, ports.apiserver, images, say)
    _wait_node_ready(state, timeout=180)
    if with_operator:
        from ctrain_dev.sandbox.operator import start_operator

        start_operator(state, _start, say)


def _create_buckets(state: State) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=state.s3_endpoint,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name=S3_REGION,
    )
    for bucket in BUCKETS:
        client.create_bucket(Bucket=bucket)


def _wait_node_ready(state: State, timeout: float) -> None:
    """Wait for the Node to be Ready and the `default` ServiceAccount to exist."""
    from kubernetes import client, config

    api = client.CoreV1Api(config.new_client_from_config(str(state.kubeconfig)))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not realnode.running(state.node):
            raise preflight.SandboxError(
                f"the node container {state.node.container} stopped: "
                f"see `docker logs {state.node.container}`"
            )
        nodes = api.list_node(field_selector=f"metadata.name={NODE_NAME}").items
        ready = nodes and any(
            c.type == "Ready" and c.status == "True" for c in nodes[0].status.conditions or []
        )
        accounts = api.list_namespaced_service_account("default").items
        if ready and any(sa.metadata.name == "default" for sa in accounts):
            return
        time.sleep(0.5)
    raise TimeoutError(
        f"node {NODE_NAME} not Ready after {timeout:.0f}s; "
        f"see `docker exec {state.node.container} journalctl -u kubelet`"
    )


def _stop_processes(state: State, say: Say) -> None:
    for record in reversed(state.processes):
        process = host.Process(**record)
        if process.alive():
            say(f"stopping {process.name} (pid {process.pid})")
            host.stop(process)
    say(f"removing the node container {state.node.container}")
    realnode.stop(state.node)
    host.delete_bridge(state.pod_network)


def down(directory: Path | None = None, say: Say = _stderr) -> bool:
    """Stop everything the sandbox started and remove its directory; False if none."""
    directory = directory or default_dir()
    state = State.load(directory)
    if state is None:
        say(f"no sandbox in {directory}")
        return False
    _stop_processes(state, say)
    _unmount_below(directory)
    shutil.rmtree(directory, ignore_errors=False)
    say(f"sandbox in {directory} removed")
    return True


def _unmount_below(directory: Path) -> None:
    """The node's mounts live in its container's mount namespace, not ours. Check it before
    removing the directory: rmtree through a mount would delete what it shows."""
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    leftover = [line for line in mounts if f" {directory}" in line]
    if leftover:
        raise RuntimeError(f"mounts remain below {directory}: {leftover}")


def status_lines(directory: Path | None = None) -> list[str]:
    directory = directory or default_dir()
    state = State.load(directory)
    if state is None:
        return [f"no sandbox in {directory} (start one with `ctrain dev up`)"]
    lines = [
        f"sandbox: {directory}",
        f"apiserver: {state.apiserver_url}",
        f"S3: {state.s3_endpoint}",
        "",
    ]
    lines.append(f"{'PROCESS':<26}{'PID':>8}  {'STATE':<8} LOG")
    for record in state.processes:
        process = host.Process(**record)
        alive = "running" if process.alive() else "stopped"
        lines.append(f"{process.name:<26}{process.pid:>8}  {alive:<8} {process.log}")
    node = state.node
    up_or_not = "running" if realnode.running(node) else "stopped"
    lines.append("")
    lines.append(
        f"node {state.node_name}: container {node.container} ({up_or_not}), "
        f"address {node.node_ip}, pods {node.pod_cidr}, image {state.image}"
    )
    return lines
