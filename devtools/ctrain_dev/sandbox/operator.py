"""The ctrain operator inside the sandbox: CRDs applied, S3 credentials, operator process.

The operator runs as a host process (its log kept in the sandbox's logs directory),
configured with the sandbox's S3 as default storage and the checkout's image for the pods
it creates (imported into the node), so `kubectl apply` of a TrainingJob works right after
`ctrain dev up`.
"""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctrain_dev.sandbox.sandbox import State

CREDENTIALS_SECRET = "s3-credentials"
CHART_IMAGE = "ctrain/ctrain:dev"  # the chart's default image, also a name of the node's copy


def kubectl(state: "State", *args: str, stdin: str | None = None) -> str:
    binary = next(Path(d) / "kubectl" for d in state.bin_dirs if (Path(d) / "kubectl").exists())
    result = subprocess.run(
        [str(binary), f"--kubeconfig={state.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def apply_crds(state: "State") -> None:
    """Apply the CRDs as generated from the API models in this checkout."""
    from ctrain_dev.generate.crd import render_all

    manifests = "---\n".join(render_all().values())
    kubectl(state, "apply", "--server-side", "--force-conflicts", "-f", "-", stdin=manifests)
    kubectl(
        state, "wait", "--for=condition=Established", "--timeout=60s", "-f", "-", stdin=manifests
    )


def credentials_secret(state: "State", namespace: str) -> None:
    """The Secret pods read S3 keys from (through secretKeyRef), in `namespace`."""
    env = state.env()
    manifest = kubectl(
        state,
        "create",
        "secret",
        "generic",
        CREDENTIALS_SECRET,
        "-n",
        namespace,
        f"--from-literal=AWS_ACCESS_KEY_ID={env['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={env['AWS_SECRET_ACCESS_KEY']}",
        "--dry-run=client",
        "-o",
        "yaml",
    )
    kubectl(state, "apply", "-f", "-", stdin=manifest)


def operator_env(state: "State") -> dict[str, str]:
    import os

    return {
        **os.environ,
        "KUBECONFIG": str(state.kubeconfig),
        "CTRAIN_S3_ENDPOINT": state.s3_endpoint,
        "CTRAIN_S3_SECRET": CREDENTIALS_SECRET,
        "CTRAIN_DEFAULT_BUCKET": "models",
        "CTRAIN_DEFAULT_PREFIX": "ctrain",
        "CTRAIN_IMAGE": state.image or CHART_IMAGE,
        # moto speaks plain HTTP on localhost, and the tests' datasets live in other
        # buckets of the same endpoint.
        "CTRAIN_S3_ALLOW_HTTP": "true",
        "CTRAIN_S3_ALLOWED": json.dumps([{"endpoint": state.s3_endpoint, "buckets": ["*"]}]),
        # The operator itself reads the registry (aliases, drift) with these.
        **{k: v for k, v in state.env().items() if k.startswith("AWS_")},
    }


def operator_argv(liveness_port: int = 0) -> list[str]:
    return [sys.executable, "-m", "ctrain.cli", "operator", f"--liveness-port={liveness_port}"]


def start_operator(state: "State", start: Callable[..., Any], say: Callable[[str], None]) -> None:
    say("applying the ctrain CRDs and starting the operator")
    apply_crds(state)
    credentials_secret(state, "default")
    start(state, "ctrain-operator", operator_argv(), operator_env(state))
