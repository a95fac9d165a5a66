"""The first code a pod's container runs, inside its own private mount namespace.

The agent starts `unshare --mount --propagation private -- python -m ctrain_dev.nodeagent.shim
PLAN.json`. The shim bind-mounts the pod's volumes and termination-message file at the
paths the container asked for (visible to this process tree only), drops to the
container's user and groups when the agent runs with `--run-as-pod-user` (by default
processes keep the agent's user: with no image there is no filesystem prepared for another
user, and Pod Security admission has already checked the securityContext), and execs the
container's command.
"""

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

_PR_SET_NO_NEW_PRIVS = 38


def _bind(source: str, target: str, read_only: bool) -> None:
    source_path, target_path = Path(source), Path(target)
    if source_path.is_dir():
        target_path.mkdir(parents=True, exist_ok=True)
    else:
        target_path.parent.mkdir(parents=True, exist_ok=True)
        if not target_path.exists():
            target_path.touch()
    subprocess.run(["mount", "--bind", source, target], check=True)
    if read_only:
        subprocess.run(["mount", "-o", "remount,bind,ro", target], check=True)


def _hides(target: str, path: str) -> bool:
    return path == target or path.startswith(target.rstrip("/") + "/")


def run(plan: dict[str, object]) -> None:
    # The container's programs live on the host (there is no image): a volume mounted over
    # one of their directories (an emptyDir on /tmp while the checkout is under /tmp) would
    # hide them, so such a directory is stashed first and bound back on top.
    keep = [str(p) for p in plan.get("preserve", [])]  # type: ignore[attr-defined]
    stash = Path(str(plan["stash_dir"]))
    restore: list[tuple[str, str]] = []
    for mount in plan["mounts"]:  # type: ignore[attr-defined]
        for path in keep:
            if _hides(mount["target"], path) and Path(path).is_dir():
                saved = stash / str(len(restore))
                saved.mkdir(parents=True, exist_ok=True)
                subprocess.run(["mount", "--bind", path, str(saved)], check=True)
                restore.append((str(saved), path))
        _bind(mount["source"], mount["target"], mount["read_only"])
    for stashed, original in restore:
        _bind(stashed, original, False)
    _bind(str(plan["termination_source"]), str(plan["termination_path"]), False)
    if plan.get("no_new_privs"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if plan.get("apply_identity"):
        os.setgroups([int(group) for group in plan["groups"]])  # type: ignore[attr-defined]
        os.setgid(int(plan["gid"]))  # type: ignore[call-overload]
        os.setuid(int(plan["uid"]))  # type: ignore[call-overload]
    os.chdir(str(plan.get("working_dir") or "/"))
    argv = [str(part) for part in plan["argv"]]  # type: ignore[attr-defined]
    env = {str(key): str(value) for key, value in plan["env"].items()}  # type: ignore[attr-defined]
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as error:
        print(f"failed to start container process {argv[0]!r}: {error}", file=sys.stderr)
        sys.exit(128)


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()))
