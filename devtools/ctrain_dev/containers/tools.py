"""Pinned Go programs the kind tier builds once from the Go module proxy.

kind itself, and what a kind node runs besides Kubernetes: containerd (with its runc shim
and `ctr`), crictl and CoreDNS; etcd at the version kubeadm deploys for this Kubernetes
release (the sandbox runs its own, older pin; wrapper module `gomod-etcd`); Kubernetes'
node binaries (kubelet, kubeadm, kube-proxy) at the sandbox's Kubernetes version (wrapper
module `gomod-node`, whose pins match the sandbox's `gomod-kube`).

Each lands in `~/.cache/ctrain/bin/<name>-<version>/`, built under a lock so concurrent
runs on one machine build it once.
"""

import contextlib
import fcntl
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ctrain_dev import gobuild
from ctrain_dev.sandbox import binaries

Say = Callable[[str], None]

HERE = Path(__file__).parent


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Tool:
    """Go packages of one pinned module, installed together into one directory."""

    name: str
    module: str
    version: str
    packages: tuple[str, ...]
    flags: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return binaries.cache_root() / f"{self.name}-{self.version}"

    @property
    def executables(self) -> list[str]:
        return [package.rstrip("/").rsplit("/", 1)[-1] for package in self.packages]


KIND = Tool("kind", "sigs.k8s.io/kind", "v0.33.0", ("sigs.k8s.io/kind",))
CONTAINERD = Tool(
    "containerd",
    "github.com/containerd/containerd/v2",
    "v2.3.4",
    tuple(
        f"github.com/containerd/containerd/v2/cmd/{name}"
        for name in ("containerd", "containerd-shim-runc-v2", "ctr")
    ),
    # The snapshotters kind never uses; without them containerd needs no C toolchain.
    flags=("-tags", "no_btrfs no_devmapper no_zfs no_aufs"),
)
CRICTL = Tool("crictl", "sigs.k8s.io/cri-tools", "v1.34.0", ("sigs.k8s.io/cri-tools/cmd/crictl",))
COREDNS = Tool("coredns", "github.com/coredns/coredns", "v1.12.1", ("github.com/coredns/coredns",))

ALL = (KIND, CONTAINERD, CRICTL, COREDNS)


@contextlib.contextmanager
def lock(directory: Path, say: Say) -> Iterator[None]:
    """One build of `directory` at a time on this machine."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{directory}.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process building {directory.name}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _complete(directory: Path, names: list[str]) -> bool:
    return all((directory / name).is_file() for name in names)


def ensure(tool: Tool, say: Say = _stderr) -> Path:
    """The directory holding `tool`'s executables, built first if needed."""
    if not _complete(tool.directory, tool.executables):
        with lock(tool.directory, say):
            if not _complete(tool.directory, tool.executables):
                gobuild.install(
                    tool.module,
                    tool.version,
                    list(tool.packages),
                    tool.directory,
                    say,
                    env=tool.env,
                    flags=list(tool.flags),
                )
    return tool.directory


# --- Kubernetes' node binaries and kubeadm's etcd ---------------------------------------

NODE_PACKAGES = [
    "k8s.io/kubernetes/cmd/kubelet",
    "k8s.io/kubernetes/cmd/kubeadm",
    "k8s.io/kubernetes/cmd/kube-proxy",
]
NODE_BINARIES = ["kubelet", "kubeadm", "kube-proxy"]
ETCD_VERSION = "v3.6.5"  # what kubeadm deploys for Kubernetes 1.34


def node_dir() -> Path:
    return binaries.cache_root() / f"node-{binaries.KUBERNETES_VERSION}"


def etcd_dir() -> Path:
    return binaries.cache_root() / f"etcd-{ETCD_VERSION}"


def _build_in_module(
    module_dir: Path, packages: list[str], out_dir: Path, ldflags: str, say: Say
) -> None:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false"}
    total = gobuild.count_packages(packages, module_dir, env)
    partial = Path(f"{out_dir}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    say(f"building {out_dir.name} (first time only; this takes several minutes)")
    argv = [gobuild.go(), "build", "-v", "-trimpath", "-ldflags", ldflags, "-o", f"{partial}/"]
    log = Path(f"{out_dir}.log")
    gobuild.run([*argv, *packages], module_dir, env, out_dir.name, total, say, log)
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    say(f"  {out_dir.name}: done")


def ensure_node_binaries(say: Say = _stderr) -> Path:
    """kubelet, kubeadm and kube-proxy at the sandbox's Kubernetes version (`gomod-node`)."""
    out = node_dir()
    if not _complete(out, NODE_BINARIES):
        with lock(out, say):
            if not _complete(out, NODE_BINARIES):
                module = HERE / "gomod-node"
                _build_in_module(module, NODE_PACKAGES, out, binaries.version_ldflags(), say)
    return out


def ensure_etcd(say: Say = _stderr) -> Path:
    """etcd at kubeadm's version, from this package's pinned wrapper module."""
    out = etcd_dir()
    if not _complete(out, ["etcd"]):
        with lock(out, say):
            if not _complete(out, ["etcd"]):
                _build_in_module(HERE / "gomod-etcd", ["./etcd"], out, "-s -w", say)
    return out


# --- kstatus, for the tests of the conditions -------------------------------------------

KSTATUS_VERSION = "v0.37.2"  # sigs.k8s.io/cli-utils, pinned in gomod-kstatus


def kstatus_dir() -> Path:
    return binaries.cache_root() / f"kstatus-{KSTATUS_VERSION}"


def ensure_kstatus(say: Say = _stderr) -> Path:
    """The `kstatus` command (gomod-kstatus): kstatus' own status.Compute on objects read
    as JSON, so tests judge ctrain's conditions as Flux does."""
    out = kstatus_dir()
    if not _complete(out, ["kstatus"]):
        with lock(out, say):
            if not _complete(out, ["kstatus"]):
                _build_in_module(HERE / "gomod-kstatus", ["./kstatus"], out, "-s -w", say)
    return out / "kstatus"
