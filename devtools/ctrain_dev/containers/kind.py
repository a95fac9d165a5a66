"""kind clusters for the kind tier: the kind binary, the node image, create, load, delete.

`kind` on PATH is used when installed, else the pinned build (`tools.KIND`, from the Go
module proxy). The node image is kind's default where the engine can pull it (a user's
Docker); on the project's own engine, where nothing can be pulled, it is the one made
here (`nodeimage`). `CTRAIN_KIND_NODE_IMAGE` overrides: an image name, or `local` for
the one made here.
"""

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ctrain_dev.containers import engine as engine_module
from ctrain_dev.containers import nodeimage, tools
from ctrain_dev.containers.errors import ContainersError

Say = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class KindError(ContainersError):
    """A kind command failed; the message holds its output."""


def binary(say: Say = _stderr) -> str:
    installed = shutil.which("kind")
    if installed:
        return installed
    return str(tools.ensure(tools.KIND, say) / "kind")


def node_image(found: engine_module.Engine, say: Say = _stderr) -> str | None:
    """The node image to create clusters with; None for kind's default."""
    choice = os.environ.get("CTRAIN_KIND_NODE_IMAGE", "")
    if choice and choice != "local":
        return choice
    if choice == "local" or found.owned:
        return nodeimage.node_image(found, say)
    return None


def without_host_ports(config: str) -> str:
    """The cluster config with every `extraPortMappings` host port left to Docker to pick.

    The tests use the project's kind-config.yaml as it is, except that a test cluster
    must not take a fixed port of this machine (localhost:8080 may be in use).
    """
    document: dict[str, Any] = yaml.safe_load(config)
    for node in document.get("nodes") or []:
        for mapping in node.get("extraPortMappings") or []:
            mapping["hostPort"] = 0
    return yaml.safe_dump(document, sort_keys=False)


@dataclass(frozen=True)
class Kind:
    """The kind binary bound to one engine; `kubeconfig` keeps kind away from ~/.kube."""

    found: engine_module.Engine
    executable: str
    kubeconfig: Path | None = None

    def run(self, *args: str, stdin: str | None = None, timeout: float = 900) -> str:
        env = dict(self.found.env)
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        done = subprocess.run(
            [self.executable, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise KindError(f"`kind {' '.join(args[:3])}` failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def clusters(self) -> list[str]:
        return self.run("get", "clusters").split()

    def create(self, name: str, config: str, image: str | None, wait: str = "300s") -> None:
        argv = ["create", "cluster", "--name", name, "--config", "-", "--wait", wait]
        if image:
            argv += ["--image", image]
        self.run(*argv, stdin=config)

    def delete(self, name: str) -> None:
        self.run("delete", "cluster", "--name", name)

    def kubeconfig_of(self, name: str) -> str:
        return self.run("get", "kubeconfig", "--name", name)

    def load(self, name: str, image: str) -> None:
        """Copy `image` from the engine into every node's containerd (no registry)."""
        self.run("load", "docker-image", image, "--name", name)

    def control_plane_port(self, name: str, container_port: int) -> int:
        """The host port Docker mapped to `container_port` of the control-plane node."""
        mapped = self.found.docker("port", f"{name}-control-plane", f"{container_port}/tcp")
        return int(mapped.splitlines()[0].rsplit(":", 1)[1])


def find(say: Say = _stderr, kubeconfig: Path | None = None) -> Kind:
    return Kind(engine_module.find(say), binary(say), kubeconfig)
