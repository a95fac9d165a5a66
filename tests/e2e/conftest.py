"""The kind environment: for the e2e tests, and for the Makefile's kind targets.

One code path sets up ctrain on kind, so what `make kind-deploy` does is what the e2e
session tests: the Makefile runs this file as a script (`python tests/e2e/conftest.py
up|deploy|demo|down`), and the session fixtures call the same functions.

What runs on the cluster: the ctrain image (built with Docker, copied into the nodes
with `kind load docker-image`), the chart from charts/ctrain, and an S3 API for the
model registry: by default moto's server in the namespace `ctrain-s3`, from an image
built on the ctrain image plus moto[server] at the version of pyproject's `sandbox`
extra (the product image does not ship moto); or any S3 API the cluster can reach,
named by `CTRAIN_E2E_S3_ENDPOINT`.

Environment:
    CTRAIN_E2E_CLUSTER         kind cluster (default `ctrain`, the one `make kind-up` makes;
                               an existing cluster is reused and left running)
    CTRAIN_E2E_IMAGE           the ctrain image (default `ctrain:dev`)
    CTRAIN_E2E_S3_ENDPOINT     an S3 API reachable from the pods and from this machine
    CTRAIN_E2E_S3_ACCESS_KEY_ID, CTRAIN_E2E_S3_SECRET_ACCESS_KEY, CTRAIN_E2E_S3_REGION
                               its credentials and region
    CTRAIN_E2E_KEEP=1          keep a cluster the session created
"""

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

CLUSTER = os.environ.get("CTRAIN_E2E_CLUSTER", "ctrain")
IMAGE = os.environ.get("CTRAIN_E2E_IMAGE", "ctrain:dev")
OPERATOR_NAMESPACE = "ctrain-system"
S3_NAMESPACE = "ctrain-s3"
S3_PORT = 5000
BUCKETS = ("models", "datasets")
DEMO_NAMESPACE = "demo"
DEMO_NODE_PORT = 30080  # kind-config.yaml maps it to localhost:8080
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


# --- prerequisites ---------------------------------------------------------------------


def tool(name: str) -> str | None:
    """An executable on PATH; kubectl and helm also from the sandbox's pinned builds."""
    found = shutil.which(name)
    if found or name not in ("kubectl", "helm"):
        return found
    from ctrain_dev.sandbox import binaries

    directory = binaries.kube_cache_dir() if name == "kubectl" else binaries.helm_cache_dir()
    candidate = directory / name
    return str(candidate) if candidate.is_file() and os.access(candidate, os.X_OK) else None


def missing_prerequisites() -> list[str]:
    """What keeps kind from running here, one phrase per missing piece (empty: all set)."""
    missing = [f"`{name}` is not on PATH" for name in ("docker", "kind") if not tool(name)]
    missing += [
        f"`{name}` is not on PATH (nor built by `make binaries`)"
        for name in ("kubectl", "helm")
        if not tool(name)
    ]
    if tool("docker"):
        problem = _docker_problem()
        if problem:
            missing.append(f"the Docker daemon is not reachable (`docker info`: {problem})")
    return missing


def _docker_problem() -> str | None:
    try:
        probe = subprocess.run(
            ["docker", "info"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return "no answer within 30s"
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit code {probe.returncode}"


# --- commands --------------------------------------------------------------------------


def run(*argv: str, stdin: str | None = None, check: bool = True) -> str:
    """Run a command; on failure raise with its output, which is what a reader needs."""
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(
            f"`{' '.join(argv)}` failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll `check` every 2s until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


@dataclass
class Cluster:
    """A kind cluster and its kubeconfig, with the kubectl and helm calls the tests make."""

    name: str
    kubeconfig: Path
    created: bool = False
    _kubectl: str = field(default_factory=lambda: tool("kubectl") or "kubectl")

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return run(
            self._kubectl, f"--kubeconfig={self.kubeconfig}", *args, stdin=stdin, check=check
        )

    def apply(self, *documents: dict[str, Any], namespace: str | None = None) -> None:
        scope = ["-n", namespace] if namespace else []
        text = yaml.safe_dump_all(documents)
        self.kubectl("apply", "--server-side", "--force-conflicts", *scope, "-f", "-", stdin=text)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(
            self.kubectl("get", kind, name, "-n", namespace, "-o", "json")
        )
        return body

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        metadata = {"name": name, "labels": labels or {}}
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})

    def secret(self, name: str, namespace: str, data: dict[str, str]) -> None:
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
        metadata = {"name": name, "namespace": namespace}
        self.apply({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": encoded})

    def wait_for(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        return wait_for(check, timeout, what)

    def wait_phase(self, kind: str, name: str, namespace: str, phases: set[str]) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            body = self.get(kind, name, namespace)
            return body if (body.get("status") or {}).get("phase") in phases else None

        return wait_for(done, 600, f"{kind}/{name} in {sorted(phases)}")

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, port: int) -> Iterator[str]:
        """http://127.0.0.1:<free port> forwarded to `target` (e.g. svc/s3) port `port`."""
        argv = [self._kubectl, f"--kubeconfig={self.kubeconfig}", "port-forward", "-n"]
        process = subprocess.Popen(
            [*argv, namespace, target, f":{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            match = re.search(r"127\.0\.0\.1:(\d+)", line)
            if match is None:
                raise RuntimeError(f"kubectl port-forward {target}: {line}{process.stdout.read()}")
            yield f"http://127.0.0.1:{match.group(1)}"
        finally:
            process.terminate()
            process.wait(timeout=10)


# --- cluster lifecycle -----------------------------------------------------------------


def cluster_up(name: str, kubeconfig: Path) -> Cluster:
    """Create the kind cluster from kind-config.yaml, or reuse one of that name."""
    existing = run("kind", "get", "clusters").split()
    created = name not in existing
    if created:
        config = ROOT / "kind-config.yaml"
        run("kind", "create", "cluster", "--name", name, "--config", str(config), "--wait", "180s")
    kubeconfig.write_text(run("kind", "get", "kubeconfig", "--name", name))
    return Cluster(name, kubeconfig, created=created)


def cluster_down(name: str) -> None:
    run("kind", "delete", "cluster", "--name", name)


def load_image(cluster: Cluster, image: str) -> None:
    """Build the image from the working tree and copy it into every node (no registry).

    The build runs every time (Docker's layer cache makes a rebuild of unchanged code
    quick), so the cluster runs the code under test, not an old image of the same tag.
    """
    if (ROOT / "Dockerfile").is_file():
        run("docker", "build", "--tag", image, str(ROOT))
    elif subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode:
        raise RuntimeError(f"no Dockerfile in {ROOT} and no image {image} in the local Docker")
    run("kind", "load", "docker-image", image, "--name", cluster.name)


def s3_image(image: str) -> str:
    """Build `<image>-s3`: the ctrain image plus moto's server, pinned like the sandbox's."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        extras = tomllib.load(handle)["project"]["optional-dependencies"]["sandbox"]
    moto = next(requirement for requirement in extras if requirement.startswith("moto"))
    repository, _, tag = image.rpartition(":")
    derived = f"{repository}-s3:{tag}" if repository and "/" not in tag else f"{image}-s3"
    dockerfile = (
        f"FROM {image}\nUSER root\nRUN pip install --no-cache-dir '{moto}'\nUSER 65532:65532\n"
    )
    run("docker", "build", "--tag", derived, "-", stdin=dockerfile)
    return derived


@dataclass(frozen=True)
class S3:
    """The model registry's S3 API: the URL pods use, credentials, and how to reach it here."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    in_cluster: bool  # moto in ctrain-s3: reach it from here through a port-forward

    def credentials(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}


def install_s3(cluster: Cluster, image: str) -> S3:
    """The S3 API named by CTRAIN_E2E_S3_ENDPOINT, or moto's server from the ctrain image."""
    external = os.environ.get("CTRAIN_E2E_S3_ENDPOINT")
    if external:
        s3 = S3(
            external,
            os.environ.get("CTRAIN_E2E_S3_ACCESS_KEY_ID", ""),
            os.environ.get("CTRAIN_E2E_S3_SECRET_ACCESS_KEY", ""),
            os.environ.get("CTRAIN_E2E_S3_REGION", "us-east-1"),
            in_cluster=False,
        )
        _create_buckets(s3.endpoint, s3)
        return s3
    s3 = S3(
        f"http://s3.{S3_NAMESPACE}.svc:{S3_PORT}", "ctrain-e2e", "ctrain-e2e", "us-east-1", True
    )
    moto_image = s3_image(image)
    run("kind", "load", "docker-image", moto_image, "--name", cluster.name)
    cluster.namespace(S3_NAMESPACE, RESTRICTED)
    cluster.apply(*_moto_manifests(moto_image), namespace=S3_NAMESPACE)
    try:
        cluster.kubectl("rollout", "status", "-n", S3_NAMESPACE, "deploy/s3", "--timeout=180s")
    except RuntimeError as error:
        logs = cluster.kubectl("logs", "-n", S3_NAMESPACE, "deploy/s3", "--tail=20", check=False)
        raise RuntimeError(f"moto's server did not start from {moto_image}:\n{logs}") from error
    with cluster.port_forward(S3_NAMESPACE, "svc/s3", S3_PORT) as url:
        _create_buckets(url, s3)
    return s3


def _create_buckets(url: str, s3: S3) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=s3.access_key or None,
        aws_secret_access_key=s3.secret_key or None,
        region_name=s3.region,
    )
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    for bucket in BUCKETS:
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)


def _moto_manifests(image: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "s3", "app.kubernetes.io/part-of": "ctrain-e2e"}
    container = {
        "name": "moto",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "moto.server", "--host", "0.0.0.0", "--port", str(S3_PORT)],
        "ports": [{"name": "s3", "containerPort": S3_PORT}],
        "readinessProbe": {"tcpSocket": {"port": S3_PORT}, "periodSeconds": 2},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "s3", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container]}},
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s3", "labels": labels},
        "spec": {"selector": dict(labels), "ports": [{"name": "s3", "port": S3_PORT}]},
    }
    return [deployment, service]


def install_chart(cluster: Cluster, image: str, s3: S3) -> None:
    """helm upgrade --install the chart, with the S3 API as the operator's default storage."""
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:  # no tag, or a registry port only
        repository, tag = image, "latest"
    cluster.namespace(OPERATOR_NAMESPACE)
    cluster.secret("s3-credentials", OPERATOR_NAMESPACE, s3.credentials())
    run(
        tool("helm") or "helm",
        f"--kubeconfig={cluster.kubeconfig}",
        "upgrade",
        "--install",
        "ctrain",
        str(ROOT / "charts" / "ctrain"),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--wait",
        "--timeout=5m",
        f"--set=image.repository={repository}",
        f"--set=image.tag={tag}",
        "--set=image.pullPolicy=IfNotPresent",
        f"--set=storage.endpoint={s3.endpoint}",
        f"--set=storage.region={s3.region}",
        "--set=storage.credentialsSecret=s3-credentials",
    )


def deploy(cluster: Cluster, image: str) -> S3:
    """Build and load the image, start the S3 API, install the chart: ready for models."""
    load_image(cluster, image)
    s3 = install_s3(cluster, image)
    install_chart(cluster, image, s3)
    return s3


def model_namespace(cluster: Cluster, name: str, s3: S3) -> None:
    """A namespace for models: Pod Security restricted, with the S3 credentials Secret."""
    cluster.namespace(name, RESTRICTED)
    cluster.secret("s3-credentials", name, s3.credentials())


# --- pytest fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The kind cluster; skips every e2e test, with what is missing, where kind cannot run."""
    missing = missing_prerequisites()
    if missing:
        pytest.skip("kind e2e tests need Docker and kind: " + "; ".join(missing))
    cluster = cluster_up(CLUSTER, tmp_path_factory.mktemp("kind") / "kubeconfig")
    yield cluster
    if cluster.created and os.environ.get("CTRAIN_E2E_KEEP") != "1":
        cluster_down(cluster.name)


@pytest.fixture(scope="session")
def s3(kind_cluster: Cluster) -> S3:
    """ctrain deployed on the cluster: the image loaded, the S3 API, the chart."""
    return deploy(kind_cluster, IMAGE)


@pytest.fixture(scope="module")
def namespace(kind_cluster: Cluster, s3: S3, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh model namespace per test module (Pod Security restricted, S3 credentials)."""
    name = f"e2e-{request.module.__name__.rpartition('.')[2][:20]}-{uuid.uuid4().hex[:6]}"
    name = name.replace("_", "-").lower()
    model_namespace(kind_cluster, name, s3)
    yield name
    kind_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


# --- the Makefile's kind targets -------------------------------------------------------


def _demo(cluster: Cluster, s3: S3) -> None:
    """Apply examples/gitops/iris, wait for it to serve, and ask it for a prediction."""
    model_namespace(cluster, DEMO_NAMESPACE, s3)
    cluster.kubectl("apply", "-n", DEMO_NAMESPACE, "-f", str(ROOT / "examples/gitops/iris"))
    print("training iris and waiting for iris-serving (kubectl get ctrain -n demo -w)...")
    served = cluster.wait_phase("modeldeployment", "iris-serving", DEMO_NAMESPACE, {"Available"})
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "iris-nodeport", "namespace": DEMO_NAMESPACE},
            "spec": {
                "type": "NodePort",
                "selector": dict(
                    pair.split("=", 1) for pair in served["status"]["selector"].split(",")
                ),
                "ports": [{"port": 8080, "targetPort": 8080, "nodePort": DEMO_NODE_PORT}],
            },
        }
    )
    print(f"serving version {served['status'].get('currentVersion')}; try:")
    print(
        "  curl -s localhost:8080/v2/models/iris/infer -H 'content-type: application/json' "
        """-d '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","""
        """"data":[5.1,3.5,1.4,0.2]}]}'"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ctrain on kind (the Makefile's kind-* targets)")
    parser.add_argument("command", choices=["up", "deploy", "demo", "down"])
    parser.add_argument("--cluster", default=CLUSTER)
    parser.add_argument("--image", default=IMAGE)
    args = parser.parse_args(argv)
    missing = missing_prerequisites()
    if missing:
        print("kind needs: " + "; ".join(missing), file=sys.stderr)
        return 2
    if args.command == "down":
        cluster_down(args.cluster)
        return 0
    kubeconfig = Path(tempfile.gettempdir()) / f"kind-{args.cluster}.kubeconfig"
    cluster = cluster_up(args.cluster, kubeconfig)
    if args.command == "deploy":
        deploy(cluster, args.image)
    elif args.command == "demo":
        _demo(cluster, install_s3(cluster, args.image))
    print(f"cluster {args.cluster} ready; kubectl --context kind-{args.cluster} get ctrain -A")
    return 0


if __name__ == "__main__":
    sys.exit(main())
