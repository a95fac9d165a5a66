"""What the sandbox does to this host: its network and its processes.

The network: a bridge on the host (`ctrain<N>`, `10.N.0.1/16`). The
control plane and S3 listen on that address; the node container sits on the bridge as
`10.N.0.2` (`sandbox.realnode`), and its pods, `10.N.128.0/17`, are routed to it, so
traffic never leaves this machine. Needs root.

Processes: long-running ones start detached and are stopped by their own pid. A process is
recorded with its pid and its start time (from `/proc/<pid>/stat`); `stop` checks both
before signalling, so a recycled pid is never killed by mistake.
"""

import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

# --- the sandbox network --------------------------------------------------------------


class NetworkError(RuntimeError):
    """An `ip` command failed; the message holds its stderr."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def bridge_name(network: int) -> str:
    return f"ctrain{network}"


def host_ip(network: int) -> str:
    return f"10.{network}.0.1"


def link_exists(name: str) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


def create_bridge(network: int) -> None:
    """Create (or keep) the sandbox bridge with the host address."""
    name = bridge_name(network)
    if not link_exists(name):
        _ip("link", "add", name, "type", "bridge")
        _ip("addr", "add", f"{host_ip(network)}/16", "dev", name)
    _ip("link", "set", name, "up")


def delete_bridge(network: int) -> None:
    if link_exists(bridge_name(network)):
        _ip("link", "del", bridge_name(network))


# --- processes ------------------------------------------------------------------------


@dataclasses.dataclass
class Process:
    name: str
    pid: int
    started: int
    log: str

    def alive(self) -> bool:
        return is_running(self.pid, self.started)


def _stat(pid: int) -> list[str] | None:
    try:
        # Fields after the command name, which is in parentheses and may hold spaces.
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (0 if it is gone)."""
    fields = _stat(pid)
    return int(fields[19]) if fields else 0


def is_running(pid: int, started: int) -> bool:
    """True if `pid` is alive (not a zombie) and is the process that started at `started`."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == started


def spawn(name: str, argv: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
    """Start `argv` in its own session with output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return Process(name=name, pid=process.pid, started=start_time(process.pid), log=str(log))


def stop(process: Process, grace_seconds: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after the grace period; a no-op if it is already gone."""
    if not process.alive():
        return
    _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if not process.alive():
            _reap(process.pid)
            return
        time.sleep(0.1)
    if process.alive():
        _signal(process.pid, signal.SIGKILL)
    _reap(process.pid)


def _signal(pid: int, signum: int) -> None:
    """Signal the process's group (it leads its own session) so its children go too."""
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child (else it is not ours)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
