"""Find or build the upstream binaries the sandbox runs.

Kubernetes publishes no binaries to any package registry, so they are built once from
pinned upstream Go modules (the wrapper modules next to this file) with the machine's Go,
and cached outside the repository, keyed by version. `KUBEBUILDER_ASSETS` (the envtest
convention) takes precedence for whatever it holds.
"""

import contextlib
import dataclasses
import fcntl
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from ctrain_dev import gobuild

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.4"
HELM_VERSION = "v3.19.0"

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd")
HELM_BINARIES = ("helm",)
ALL_BINARIES = KUBE_BINARIES + HELM_BINARIES

_HERE = Path(__file__).parent
_KUBE_PACKAGES = [
    "k8s.io/kubernetes/cmd/kube-apiserver",
    "k8s.io/kubernetes/cmd/kube-controller-manager",
    "k8s.io/kubernetes/cmd/kube-scheduler",
    "k8s.io/kubernetes/cmd/kubectl",
    "./etcd",
]

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """A binary could not be found or built; the message says what to do."""


@dataclasses.dataclass(frozen=True)
class Binaries:
    """Absolute paths of the sandbox's executables."""

    paths: dict[str, Path]

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]

    @property
    def bin_dirs(self) -> list[Path]:
        return sorted({path.parent for path in self.paths.values()})


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ctrain" / "bin"


def kube_cache_dir() -> Path:
    return cache_root() / f"kube-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}"


def helm_cache_dir() -> Path:
    return cache_root() / f"helm-{HELM_VERSION}-k8s-{KUBERNETES_VERSION}"


def version_ldflags() -> str:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [
            f"-X {package}.gitVersion={KUBERNETES_VERSION}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(flags)


def go_build_commands() -> list[tuple[Path, list[str], Path]]:
    """(module dir, `go build` argv, output dir) for every binary group, without running it."""
    kube_out = kube_cache_dir()
    helm_out = helm_cache_dir()
    kube = [
        "go",
        "build",
        "-v",
        "-trimpath",
        "-ldflags",
        version_ldflags(),
        "-o",
        f"{kube_out}.partial/",
        *_KUBE_PACKAGES,
    ]
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    # Like upstream's Makefile: helm's offline default Kubernetes version (for `helm
    # template` and `--dry-run`) is the one the sandbox runs.
    helm_flags = [f"-s -w -X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"]
    for package in ("helm.sh/helm/v3/pkg/chartutil", "helm.sh/helm/v3/pkg/lint/rules"):
        helm_flags += [
            f"-X {package}.k8sVersionMajor={major}",
            f"-X {package}.k8sVersionMinor={minor}",
        ]
    helm = [
        "go",
        "build",
        "-v",
        "-trimpath",
        "-ldflags",
        " ".join(helm_flags),
        "-o",
        f"{helm_out}.partial/",
        "helm.sh/helm/v3/cmd/helm",
    ]
    return [(_HERE / "gomod-kube", kube, kube_out), (_HERE / "gomod-helm", helm, helm_out)]


def _from_assets(names: tuple[str, ...]) -> dict[str, Path]:
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if not assets:
        return {}
    found = {}
    for name in names:
        candidate = Path(assets) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            found[name] = candidate
    return found


def _run_go_build(module_dir: Path, argv: list[str], out_dir: Path, progress: Progress) -> None:
    if shutil.which("go") is None:
        raise BuildError(
            "Go is needed to build the Kubernetes binaries once (or set KUBEBUILDER_ASSETS "
            "to a directory holding them); install Go 1.24 or newer."
        )
    partial = Path(f"{out_dir}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-buildvcs=false")
    packages = [arg for arg in argv if arg.startswith(("k8s.io/", "helm.sh/", "./"))]
    total = gobuild.count_packages(packages, module_dir, env)
    progress(
        f"building {out_dir.name} (first time only; about 15-25 minutes on 2 cores"
        f"{f', {total} packages' if total else ''})"
    )
    try:
        compiled = gobuild.run(
            argv, module_dir, env, out_dir.name, total, progress, Path(f"{out_dir}.log")
        )
    except gobuild.GoBuildError as error:
        raise BuildError(str(error)) from None
    if out_dir.exists():
        shutil.rmtree(out_dir)
    partial.rename(out_dir)
    progress(f"  {out_dir.name}: done ({compiled} packages compiled)")


def needs_build() -> bool:
    """True if `ensure_binaries` would have to build something (Go needed)."""
    have = _from_assets(ALL_BINARIES)
    for _module, _argv, out_dir in go_build_commands():
        wanted = KUBE_BINARIES if out_dir == kube_cache_dir() else HELM_BINARIES
        if any(name not in have and not _readable(out_dir / name) for name in wanted):
            return True
    return False


def _readable(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. another user's cache: as good as missing
        return False


@contextlib.contextmanager
def _build_lock(out_dir: Path, progress: Progress) -> Iterator[None]:
    """One build of `out_dir` at a time on this machine (tests, `make`, the demo may race)."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{out_dir}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process building {out_dir.name}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_binaries(progress: Progress | None = None) -> Binaries:
    """Return every binary the sandbox needs, building what is missing."""
    report = progress or (lambda message: print(message, file=sys.stderr, flush=True))
    paths = _from_assets(ALL_BINARIES)
    for module_dir, argv, out_dir in go_build_commands():
        wanted = KUBE_BINARIES if out_dir == kube_cache_dir() else HELM_BINARIES
        missing = [name for name in wanted if name not in paths]
        if not missing:
            continue
        if not all((out_dir / name).is_file() for name in missing):
            with _build_lock(out_dir, report):
                # Another process may have finished the same build while we waited.
                if not all((out_dir / name).is_file() for name in missing):
                    _run_go_build(module_dir, argv, out_dir, report)
        paths.update({name: out_dir / name for name in missing})
    return Binaries(paths)
