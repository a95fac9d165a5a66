"""An OCI runtime for the project's engine where this host withholds capabilities.

Some machines (this one: a VM whose root runs without CAP_SYS_RESOURCE in its bounding
set) cannot grant every capability. Docker 20.10 still asks runc for all of them for a
`--privileged` container, as kind's nodes are, and runc fails: "unable to apply caps:
operation not permitted". Where that is the case the project's dockerd runs containers
through `runc-bounded` (`--add-runtime`/`--default-runtime`): it removes from a
container's config the capabilities the host's bounding set lacks (no process here could
hold them anyway) and hands over to runc. containerd inside a kind node already grants a
privileged pod only the capabilities it has, so nothing further down needs this.
"""

import os
import sys
from pathlib import Path

# Linux capability numbers, as in <linux/capability.h>.
CAPABILITIES = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
]

NAME = "runc-bounded"

WRAPPER = '''\
"""runc minus the capabilities the host lacks (see ctrain_dev.containers.runtime)."""
import json
import os
import sys

CAPABILITIES = {capabilities!r}


def bounding():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapBnd:"):
                return int(line.split()[1], 16)
    return -1


def option(args, *names):
    for index, arg in enumerate(args):
        if arg in names and index + 1 < len(args):
            return args[index + 1]
        for name in names:
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def allowed(names, mask):
    return [
        name for name in names
        if name.removeprefix("CAP_") not in CAPABILITIES
        or mask >> CAPABILITIES.index(name.removeprefix("CAP_")) & 1
    ]


def trim(path, process_only):
    with open(path) as handle:
        document = json.load(handle)
    process = document if process_only else document.get("process") or {{}}
    sets = process.get("capabilities") or {{}}
    mask = bounding()
    for key, names in sets.items():
        sets[key] = allowed(names, mask)
    with open(path, "w") as handle:
        json.dump(document, handle)


def command(args):
    """runc's subcommand: the first word that is neither a global option nor its value."""
    valued = ("--root", "--log", "--log-format", "--criu", "--rootless")
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in valued:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


args = sys.argv[1:]
verb = command(args)
if verb in ("create", "run"):  # the container's config.json, in its bundle
    config = os.path.join(option(args, "--bundle", "-b") or os.getcwd(), "config.json")
    if os.path.exists(config):
        trim(config, process_only=False)
elif verb == "exec":  # `docker exec --privileged`: a process.json of its own
    process = option(args, "--process", "-p")
    if process and os.path.exists(process):
        trim(process, process_only=True)
os.execvp("runc", ["runc", *args])
'''


def bounding_set() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    return -1


def missing_capabilities(mask: int | None = None, last: int | None = None) -> list[str]:
    """Capabilities the kernel knows (up to cap_last_cap) that this process cannot hold."""
    mask = bounding_set() if mask is None else mask
    if last is None:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    known = CAPABILITIES[: last + 1]
    return [name for number, name in enumerate(known) if not mask >> number & 1]


def install(directory: Path, interpreter: str) -> Path:
    """Write the wrapper into `directory` with `interpreter` (stdlib only) as its shebang."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / NAME
    body = WRAPPER.format(capabilities=CAPABILITIES)
    path.write_text(f"#!{interpreter}\n{body}")
    path.chmod(0o755)
    return path


def interpreter() -> str:
    """A Python that outlives any checkout's virtualenv: the system's, or the venv's base."""
    system = Path("/usr/bin/python3")
    if system.exists():
        return str(system)
    return os.path.realpath(sys.executable)
