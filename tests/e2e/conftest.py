"""The kind environment: for the e2e tests, and for the Makefile's kind targets.

One code path sets up ctrain on kind, so what `make kind-deploy` does is what the e2e
session tests: the Makefile runs this file as a script (`python tests/e2e/conftest.py
up|deploy|demo|down`), and the session fixtures call the same functions.

What runs: a kind cluster from kind-config.yaml (kind's default node image on a Docker
that can pull it; elsewhere the node image made on this machine, see
`ctrain_dev.containers.nodeimage`), the ctrain image of this checkout (`make image`,
copied into the nodes with `kind load docker-image`), the chart from charts/ctrain, and
an S3 API for the model registry: moto's server in the namespace `ctrain-s3` (an image
of its own, `ctrain-s3:dev`, with the sandbox's moto pin), or any S3 API the cluster can
reach, named by `CTRAIN_E2E_S3_ENDPOINT`.

Environment:
    CTRAIN_E2E_CLUSTER         kind cluster (default `ctrain`, the one `make kind-up` makes;
                               an existing cluster is reused and left running)
    CTRAIN_E2E_IMAGE           the ctrain image (default `ctrain:dev`)
    CTRAIN_KIND_NODE_IMAGE     a node image, or `local` for the one made here
    CTRAIN_E2E_S3_ENDPOINT     an S3 API reachable from the pods and from this machine
    CTRAIN_E2E_S3_ACCESS_KEY_ID, CTRAIN_E2E_S3_SECRET_ACCESS_KEY, CTRAIN_E2E_S3_REGION
                               its credentials and region
    CTRAIN_E2E_KEEP=1          keep a cluster the session created
"""

import argparse
import base64
import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from ctrain_dev.containers import engine as engine_module
from ctrain_dev.containers import image as image_module
from ctrain_dev.containers import kind as kind_module
from ctrain_dev.containers.errors import ContainersError
from ctrain_dev.sandbox import binaries

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")

CLUSTER = os.environ.get("CTRAIN_E2E_CLUSTER", "ctrain")
IMAGE = os.environ.get("CTRAIN_E2E_IMAGE", image_module.DEFAULT_TAG)
OPERATOR_NAMESPACE = "ctrain-system"
S3_NAMESPACE = "ctrain-s3"
S3_PORT = 5000
BUCKETS = ("models", "datasets")
DEMO_NAMESPACE = "demo"
NODE_PORT = 30080  # kind-config.yaml publishes it on the host
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


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
    kind: kind_module.Kind
    created: bool = False

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        kubectl = str(binaries.ensure_binaries()["kubectl"])
        return run(kubectl, f"--kubeconfig={self.kubeconfig}", *args, stdin=stdin, check=check)

    def helm(self, *args: str) -> str:
        helm = str(binaries.ensure_binaries()["helm"])
        return run(helm, f"--kubeconfig={self.kubeconfig}", *args)

    def apply(self, *documents: dict[str, Any], namespace: str | None = None) -> None:
        scope = ["-n", namespace] if namespace else []
        text = yaml.safe_dump_all(documents)
        self.kubectl("apply", "--server-side", "--force-conflicts", *scope, "-f", "-", stdin=text)

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(
            self.kubectl("get", kind, name, "-n", namespace, "-o", "json")
        )
        return body

    def items(self, kind: str, namespace: str, selector: str = "") -> list[dict[str, Any]]:
        scope = ["-l", selector] if selector else []
        listing = json.loads(self.kubectl("get", kind, "-n", namespace, *scope, "-o", "json"))
        return list(listing["items"])

    def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        metadata = {"name": name, "labels": labels or {}}
        self.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": metadata})

    def secret(self, name: str, namespace: str, data: dict[str, str]) -> None:
        encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
        metadata = {"name": name, "namespace": namespace}
        self.apply({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": encoded})

    def wait_for(self, check: Callable[[], T | None], timeout: float, what: str) -> T:
        return wait_for(check, timeout, what)

    def wait_phase(
        self, kind: str, name: str, namespace: str, phases: set[str], timeout: float = 600
    ) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            body = self.get(kind, name, namespace)
            return body if (body.get("status") or {}).get("phase") in phases else None

        return wait_for(done, timeout, f"{kind}/{name} in {sorted(phases)}")

    def node_port_url(self) -> str:
        """Where this machine reaches NodePort 30080 (kind-config.yaml's port mapping)."""
        return f"http://127.0.0.1:{self.kind.control_plane_port(self.name, NODE_PORT)}"

    @contextlib.contextmanager
    def port_forward(self, namespace: str, target: str, port: int) -> Iterator[str]:
        """http://127.0.0.1:<free port> forwarded to `target` (e.g. svc/s3) port `port`."""
        kubectl = str(binaries.ensure_binaries()["kubectl"])
        argv = [kubectl, f"--kubeconfig={self.kubeconfig}", "port-forward", "-n"]
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


def cluster_up(name: str, kubeconfig: Path, testing: bool = False) -> Cluster:
    """Create the kind cluster from kind-config.yaml, or reuse one of that name.

    For a test session (`testing`), kind leaves ~/.kube/config alone and the config's
    published ports are left to Docker to pick: a test cluster must not take
    localhost:8080 from whatever else runs here. Everything else is the file as it is.
    """
    kind = kind_module.find(kubeconfig=kubeconfig.with_suffix(".kind") if testing else None)
    created = name not in kind.clusters()
    if created:
        config = (ROOT / "kind-config.yaml").read_text()
        if testing:
            config = kind_module.without_host_ports(config)
        node_image = kind_module.node_image(kind.found)
        print(f"creating kind cluster {name} ({node_image or 'kind default node image'})")
        kind.create(name, config, node_image)
    kubeconfig.write_text(kind.kubeconfig_of(name))
    return Cluster(name, kubeconfig, kind, created=created)


def cluster_down(name: str) -> None:
    kind_module.find().delete(name)


def load_image(cluster: Cluster, image: str) -> None:
    """Build the image from the working tree and copy it into every node (no registry).

    The build runs every time (Docker's layer cache makes a rebuild of unchanged code
    quick), so the cluster runs the code under test, not an old image of the same tag.
    """
    image_module.build(ROOT, image)
    cluster.kind.load(cluster.name, image)


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

    def client(self, url: str | None = None) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=url or self.endpoint,
            aws_access_key_id=self.access_key or None,
            aws_secret_access_key=self.secret_key or None,
            region_name=self.region,
        )


def install_s3(cluster: Cluster, image: str) -> S3:
    """The S3 API named by CTRAIN_E2E_S3_ENDPOINT, or moto's server in the cluster."""
    external = os.environ.get("CTRAIN_E2E_S3_ENDPOINT")
    if external:
        s3 = S3(
            external,
            os.environ.get("CTRAIN_E2E_S3_ACCESS_KEY_ID", ""),
            os.environ.get("CTRAIN_E2E_S3_SECRET_ACCESS_KEY", ""),
            os.environ.get("CTRAIN_E2E_S3_REGION", "us-east-1"),
            in_cluster=False,
        )
        _create_buckets(s3.client())
        return s3
    s3 = S3(
        f"http://s3.{S3_NAMESPACE}.svc:{S3_PORT}", "ctrain-e2e", "ctrain-e2e", "us-east-1", True
    )
    moto_image = image_module.build_s3(ROOT, image)
    cluster.kind.load(cluster.name, moto_image)
    cluster.namespace(S3_NAMESPACE, RESTRICTED)
    cluster.apply(*_moto_manifests(moto_image), namespace=S3_NAMESPACE)
    try:
        cluster.kubectl("rollout", "status", "-n", S3_NAMESPACE, "deploy/s3", "--timeout=300s")
    except RuntimeError as error:
        logs = cluster.kubectl("logs", "-n", S3_NAMESPACE, "deploy/s3", "--tail=20", check=False)
        raise RuntimeError(f"moto's server did not start from {moto_image}:\n{logs}") from error
    with s3_here(cluster, s3) as client:
        _create_buckets(client)
    return s3


@contextlib.contextmanager
def s3_here(cluster: Cluster, s3: S3) -> Iterator[Any]:
    """A boto3 client for the registry's S3 API from this machine."""
    if not s3.in_cluster:
        yield s3.client()
        return
    with cluster.port_forward(S3_NAMESPACE, "svc/s3", S3_PORT) as url:
        yield s3.client(url)


def _create_buckets(client: Any) -> None:
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
        "args": ["--port", str(S3_PORT)],
        # Path-style buckets for every host name: moto would otherwise read the bucket
        # from the first label of `s3.ctrain-s3.svc`, as virtual-hosted style.
        "env": [{"name": "S3_IGNORE_SUBDOMAIN_BUCKETNAME", "value": "true"}],
        "ports": [{"name": "s3", "containerPort": S3_PORT}],
        "readinessProbe": {"tcpSocket": {"port": S3_PORT}, "periodSeconds": 2},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "s3", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [container], "volumes": [{"name": "tmp", "emptyDir": {}}]},
            },
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
    # The operator's namespace enforces Pod Security `restricted` too.
    cluster.namespace(OPERATOR_NAMESPACE, RESTRICTED)
    cluster.secret("s3-credentials", OPERATOR_NAMESPACE, s3.credentials())
    cluster.helm(
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
        "--set=storage.allowHttp=true",
        # The data sets live beside the models: the operator watches them for new data.
        f"--set=storage.allowed[0].endpoint={s3.endpoint}",
        *(f"--set=storage.allowed[0].buckets[{i}]={bucket}" for i, bucket in enumerate(BUCKETS)),
        f"--set=storage.region={s3.region}",
        "--set=storage.credentialsSecret=s3-credentials",
    )
    # A reused cluster may run an operator from an older image of the same tag.
    cluster.kubectl("rollout", "restart", "-n", OPERATOR_NAMESPACE, "deployment")
    cluster.kubectl("rollout", "status", "-n", OPERATOR_NAMESPACE, "deployment", "--timeout=5m")


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


def node_port_service(name: str, selector: dict[str, str]) -> dict[str, Any]:
    """A NodePort Service on 30080 (published on this machine by kind-config.yaml)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": "NodePort",
            "selector": selector,
            "ports": [{"port": 8080, "targetPort": 8080, "nodePort": NODE_PORT}],
        },
    }


def selector_of(deployment_status: dict[str, Any]) -> dict[str, str]:
    """The pod selector a ModelDeployment reports (`a=b,c=d`) as a mapping."""
    return dict(pair.split("=", 1) for pair in deployment_status["selector"].split(","))


@contextlib.contextmanager
def exclusive(name: str) -> Iterator[None]:
    """One e2e session per cluster name on this machine (CPU is scarce; names are global)."""
    path = engine_module.cache_dir() / f"kind-{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- pytest fixtures -------------------------------------------------------------------


@pytest.fixture(scope="session")
def kind_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The kind cluster; skips every e2e test, saying why, where no engine can run."""
    try:
        engine_module.find()
    except ContainersError as error:
        pytest.skip(f"kind needs a container engine, and none can run here: {error}")
    with exclusive(CLUSTER):
        kubeconfig = tmp_path_factory.mktemp("kind") / "kubeconfig"
        cluster = cluster_up(CLUSTER, kubeconfig, testing=True)
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
    """Apply examples/gitops/iris, wait for it to serve, and expose it on the NodePort."""
    model_namespace(cluster, DEMO_NAMESPACE, s3)
    cluster.kubectl("apply", "-n", DEMO_NAMESPACE, "-f", str(ROOT / "examples/gitops/iris"))
    print("training iris and waiting for iris-serving (kubectl get ctrain -n demo -w)...")
    served = cluster.wait_phase("modeldeployment", "iris-serving", DEMO_NAMESPACE, {"Available"})
    service = node_port_service("iris-nodeport", selector_of(served["status"]))
    cluster.apply(service, namespace=DEMO_NAMESPACE)
    url = cluster.node_port_url()
    print(f"serving version {served['status'].get('currentVersion')}; try:")
    print(
        f"  curl -s {url}/v2/models/iris/infer -H 'content-type: application/json' "
        """-d '{"inputs":[{"name":"input-0","shape":[1,4],"datatype":"FP64","""
        """"data":[5.1,3.5,1.4,0.2]}]}'"""
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="ctrain on kind (the Makefile's kind-* targets)")
    parser.add_argument("command", choices=["up", "deploy", "demo", "down"])
    parser.add_argument("--cluster", default=CLUSTER)
    parser.add_argument("--image", default=IMAGE)
    args = parser.parse_args(argv)
    try:
        if args.command == "down":
            cluster_down(args.cluster)
            return 0
        kubeconfig = engine_module.cache_dir() / f"kind-{args.cluster}.kubeconfig"
        cluster = cluster_up(args.cluster, kubeconfig)
        if args.command == "deploy":
            deploy(cluster, args.image)
        elif args.command == "demo":
            _demo(cluster, install_s3(cluster, args.image))
    except ContainersError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"cluster {args.cluster} ready; kubectl --kubeconfig {kubeconfig} get ctrain -A")
    return 0


if __name__ == "__main__":
    sys.exit(main())
