"""The Helm chart rendered by the real `helm` binary, shared by the chart test modules.

Each module makes `find_helm()` a session fixture of its own (importing a fixture would
shadow its name in every test's arguments).
"""

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from ctrain_dev.sandbox import binaries

__all__ = [
    "CHART",
    "FULLNAME",
    "NAMESPACE",
    "RELEASE",
    "ROOT",
    "find_helm",
    "one",
    "only",
    "render",
    "run_helm",
]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ctrain"
RELEASE, NAMESPACE = "ctrain", "ctrain-system"
FULLNAME = "ctrain"  # the release name already contains the chart name


def find_helm() -> Path:
    """The sandbox's helm: from KUBEBUILDER_ASSETS or the build cache, else built now.

    Looking first avoids `ensure_binaries()` building the Kubernetes binaries, which the
    chart tests do not need, on a machine that has only helm.
    """
    candidates = [binaries.helm_cache_dir() / "helm"]
    if assets := os.environ.get("KUBEBUILDER_ASSETS"):
        candidates.insert(0, Path(assets) / "helm")
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return binaries.ensure_binaries()["helm"]


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(helm), *args], capture_output=True, text=True, check=False, timeout=120
    )


def render(helm: Path, *sets: str) -> list[dict[str, Any]]:
    """`helm template` with `--set`s, parsed into manifests."""
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    # helm built from source defaults to Kubernetes v1.20 for `template`; the chart needs 1.28+.
    args += ["--kube-version", binaries.KUBERNETES_VERSION]
    for value in sets:
        args += ["--set", value]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] == kind]


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = only(manifests, kind)
    assert len(found) == 1, [m["metadata"]["name"] for m in found]
    return found[0]
