"""Find a container engine, or start the project's own Docker daemon on this machine.

`make image` and the kind tier need a Docker API. A user's running Docker (Docker Desktop,
a system service, `DOCKER_HOST`) is used as it is. Where none answers and this is Linux
with root, the project runs its own `dockerd` from Debian's `docker.io` package (installed
with apt when missing), like the sandbox runs etcd: its own data root, exec root, pid file
and socket, so it never touches a system Docker's state, and it is stopped by its pid.

The data root lives in the cache (`~/.cache/ctrain/docker`): images built once (the base
images, the node image, layers of the ctrain image) survive a stopped engine. One engine
serves every checkout on the machine; a lock file keeps two starts from racing.
"""

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ctrain_dev.containers import errors, runtime

Say = Callable[[str], None]

# The runtime directory is short on purpose: containerd puts unix sockets below it and
# a socket path must fit in 108 bytes.
RUN_DIR = Path("/run/ctrain-docker")
SOCKET = RUN_DIR / "docker.sock"
PIDFILE = RUN_DIR / "dockerd.pid"
DOCKER_HOST = f"unix://{SOCKET}"

# Networks of the project's engine. The sandboxes on this machine put pods on
# 10.N.0.0/16 bridges (N from 16 to 250) and kind's pods and Services use 10.244/16 and
# 10.96/16 inside the nodes; Docker's own networks stay in 172.29-31/16, so no route of
# the engine ever shadows a sandbox's.
BRIDGE_IP = "172.29.0.1/24"
ADDRESS_POOL = "base=172.30.0.0/16,size=24"

APT_PACKAGES = ("docker.io",)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ctrain"


def data_root() -> Path:
    return cache_dir() / "docker"


def dockerd_argv(
    dockerd: str, data: Path, run_dir: Path = RUN_DIR, runtime: Path | None = None
) -> list[str]:
    """The project's dockerd command line; every setting that touches the host is explicit."""
    # Where this host withholds capabilities, containers run through runc-bounded (see
    # ctrain_dev.containers.runtime): kind's privileged nodes could not start otherwise.
    bounded = []
    if runtime is not None:
        bounded = [f"--add-runtime={runtime.name}={runtime}", f"--default-runtime={runtime.name}"]
    return [
        dockerd,
        f"--data-root={data}",
        f"--exec-root={run_dir / 'exec'}",
        f"--pidfile={run_dir / 'dockerd.pid'}",
        f"--host=unix://{run_dir / 'docker.sock'}",
        # With its defaults dockerd rewrites the host's iptables (FORWARD policy DROP,
        # NAT chains), which cuts the sandboxes' pod bridges, and turns on IP forwarding
        # for the whole machine. Nothing here needs either: containers reach each other
        # on their bridge, this host reaches them directly and published ports go
        # through docker-proxy. Without NAT, containers do not reach the internet: builds
        # get their Python packages from the host (see ctrain_dev.containers.wheels).
        "--iptables=false",
        "--ip-masq=false",
        "--ip-forward=false",
        f"--bip={BRIDGE_IP}",
        f"--default-address-pool={ADDRESS_POOL}",
        "--storage-driver=overlay2",
        "--group=root",
        *bounded,
    ]


@dataclass(frozen=True)
class Engine:
    """A reachable Docker API: the environment to run `docker` with, and who owns it."""

    env: dict[str, str]
    owned: bool  # the project's own dockerd (True) or the user's Docker (False)

    def docker(self, *args: str, check: bool = True, stdin: str | bytes | None = None) -> str:
        """Run `docker ARGS`; on failure raise with what docker said."""
        text = not isinstance(stdin, bytes)
        done = subprocess.run(
            ["docker", *args],
            input=stdin,
            capture_output=True,
            text=text,
            env=self.env,
            check=False,
        )
        out = done.stdout if text else done.stdout.decode(errors="replace")
        err = done.stderr if text else done.stderr.decode(errors="replace")
        if check and done.returncode != 0:
            raise errors.EngineError(f"`docker {' '.join(args[:3])}` failed: {err.strip()}")
        return str(out)


def _answers(env: dict[str, str]) -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        probe = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            env=env,
            timeout=20,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False
    return probe.returncode == 0


def _own_env() -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": DOCKER_HOST}


def find(say: Say = _stderr, start: bool = True) -> Engine:
    """The user's Docker if it answers, else the project's own dockerd (started if needed)."""
    if os.environ.get("CTRAIN_ENGINE") != "own" and _answers(dict(os.environ)):
        return Engine(dict(os.environ), owned=False)
    if _answers(_own_env()):
        return Engine(_own_env(), owned=True)
    if not start:
        raise errors.EngineError("no Docker engine answers (start one with `ctrain dev engine up`)")
    return up(say)


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    path = cache_dir() / "docker.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(say: Say = _stderr, timeout: float = 60) -> Engine:
    """Start the project's dockerd (installing Debian's docker.io first if needed)."""
    if sys.platform != "linux":
        raise errors.EngineError(
            "no Docker engine answers; start Docker (Docker Desktop, colima, ...) first. "
            "The project starts its own engine on Linux only."
        )
    if os.geteuid() != 0:
        raise errors.EngineError(
            "no Docker engine answers and starting the project's own needs root "
            "(or start your Docker and set DOCKER_HOST)"
        )
    with _lock():
        if _answers(_own_env()):
            return Engine(_own_env(), owned=True)
        dockerd = ensure_installed(say)
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        data_root().mkdir(parents=True, exist_ok=True)
        bounded = None
        if runtime.missing_capabilities():
            bounded = runtime.install(RUN_DIR, runtime.interpreter())
        log = RUN_DIR / "dockerd.log"
        say(f"starting the project's Docker engine ({DOCKER_HOST}, data in {data_root()})")
        with log.open("ab") as output:
            process = subprocess.Popen(
                dockerd_argv(dockerd, data_root(), runtime=bounded),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise errors.EngineError(
                    f"dockerd exited with code {process.returncode}: {_tail(log)}"
                )
            if _answers(_own_env()):
                return Engine(_own_env(), owned=True)
            time.sleep(0.5)
        raise errors.EngineError(f"dockerd did not answer within {timeout:.0f}s: {_tail(log)}")


def _tail(log: Path, lines: int = 3) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def ensure_installed(say: Say = _stderr) -> str:
    """The path of dockerd, installing Debian's docker.io with apt when it is missing."""
    found = shutil.which("dockerd")
    if found:
        return found
    install_packages(APT_PACKAGES, say)
    found = shutil.which("dockerd")
    if not found:
        raise errors.EngineError("apt installed docker.io but dockerd is not on PATH")
    return found


def install_packages(packages: tuple[str, ...], say: Say = _stderr) -> None:
    """apt-get install the Debian packages the containers tooling needs (root, Debian only)."""
    if shutil.which("apt-get") is None:
        raise errors.EngineError(
            f"{', '.join(packages)} missing and this is not a Debian system: install them"
        )
    say(f"installing {' '.join(packages)} with apt (first time only)")
    # The machine's policy-rc.d keeps packages from starting their services; a system
    # dockerd with default settings is exactly what must not run here.
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=600"]
    update = subprocess.run(
        ["apt-get", *wait, "update", "-qq"], capture_output=True, text=True, env=env, check=False
    )
    if update.returncode != 0:
        raise errors.EngineError(f"apt-get update failed: {update.stderr.strip()[-500:]}")
    install = subprocess.run(
        ["apt-get", *wait, "install", "-y", "-qq", "--no-install-recommends", *packages],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if install.returncode != 0:
        raise errors.EngineError(f"apt-get install failed: {install.stderr.strip()[-500:]}")


def running_pid() -> int | None:
    """The pid of the project's dockerd if it runs (from its pid file), else None."""
    try:
        pid = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    ours = any(arg == f"--pidfile={PIDFILE}".encode() for arg in command)
    return pid if ours else None


def down(say: Say = _stderr, timeout: float = 30) -> bool:
    """Stop the project's dockerd by its pid (its containers stop with it); False if none."""
    pid = running_pid()
    if pid is None:
        say("the project's Docker engine is not running")
        return False
    say(f"stopping the project's Docker engine (pid {pid})")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
    return True
