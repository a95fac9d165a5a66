"""The sandbox's node is real: a kubelet with containerd and kube-proxy running the image.

Its pods are containers of the checkout's image (`make image`, imported into the node),
admitted under Pod Security `restricted`, as the non-root user with a read-only root
filesystem; probes are the kubelet's; a ModelDeployment is reached through its ClusterIP
Service, which only kube-proxy makes work.
"""

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from kubernetes import client

from ctrain_dev.sandbox import operator as sandbox_operator
from kubehelpers import (
    RESTRICTED_CONTAINER_SECURITY,
    apply,
    container,
    get,
    iris_trainingjob,
    make_namespace,
    wait_for,
    wait_phase,
)

pytestmark = pytest.mark.integration

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def finished(core: client.CoreV1Api, namespace: str, name: str) -> client.V1Pod:
    def done() -> client.V1Pod | None:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return wait_for(done, timeout=180, interval=1, what=f"pod {name} finished")


def pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [container("main", ["python3", "-c", script])],
            **spec,
        },
    }


# --- the node ------------------------------------------------------------------------------


def test_the_node_is_a_kubelet_with_containerd(sandbox, core):
    node = core.read_node(sandbox.node_name)
    info = node.status.node_info
    assert info.container_runtime_version.startswith("containerd://")
    assert info.kubelet_version == "v1.34.4"
    assert node.status.addresses[0].address == sandbox.node.node_ip
    proxy = wait_for(
        lambda: next(
            (
                p
                for p in core.list_namespaced_pod("kube-system").items
                if p.metadata.name.startswith("kube-proxy") and p.status.phase == "Running"
            ),
            None,
        ),
        what="kube-proxy's mirror pod Running",
    )
    assert proxy.spec.node_name == sandbox.node_name


def test_pods_run_as_real_containers_of_the_image(sandbox, core):
    """The pod's user is the one its securityContext names, its root filesystem is read-only
    (the restricted profile's hardening plus the image's), `ctrain` is the image's own."""
    namespace = make_namespace(core, "rn-inside", RESTRICTED)
    script = (
        "import os, pathlib, shutil\n"
        "print('hello from the image', flush=True)\n"
        "try:\n    pathlib.Path('/opt/ctrain/x').write_text('x'); root = 'writable'\n"
        "except OSError:\n    root = 'read-only'\n"
        "pathlib.Path('/dev/termination-log').write_text("
        "f'{os.getuid()} {root} {shutil.which(\"ctrain\")}')"
    )
    manifest = pod("inside", script)
    manifest["spec"]["containers"][0]["securityContext"] = {
        **RESTRICTED_CONTAINER_SECURITY,
        "readOnlyRootFilesystem": True,
    }
    core.create_namespaced_pod(namespace, manifest)
    done = finished(core, namespace, "inside")
    terminated = done.status.container_statuses[0].state.terminated
    assert done.status.phase == "Succeeded", terminated.message
    assert terminated.message == "65532 read-only /opt/ctrain/bin/ctrain"
    assert done.status.container_statuses[0].image_id  # a real image, by digest
    # `ctrain dev logs` is `kubectl logs`: the apiserver asks the node's kubelet.
    logs = subprocess.run(
        [sys.executable, "-m", "ctrain.cli", "dev", "logs", "inside", "-n", namespace],
        env={**os.environ, "CTRAIN_SANDBOX_DIR": sandbox.directory},
        capture_output=True,
        text=True,
        check=True,
    )
    assert logs.stdout == "hello from the image\n"
    core.delete_namespace(namespace)


def test_a_failing_liveness_probe_restarts_the_container(sandbox, core):
    """The kubelet probes: a server that stops answering is restarted, its count shows it."""
    namespace = make_namespace(core, "rn-probe", RESTRICTED)
    # Serves /healthz for its first 8 s, then answers 500.
    script = (
        "import http.server, time\n"
        "born = time.monotonic()\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200 if time.monotonic() - born < 8 else 500)\n"
        "        self.end_headers()\n"
        "http.server.HTTPServer(('', 8081), H).serve_forever()\n"
    )
    manifest = pod("probed", script, restartPolicy="Always")
    manifest["spec"]["containers"][0]["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": 8081},
        "periodSeconds": 2,
        "failureThreshold": 2,
    }
    core.create_namespaced_pod(namespace, manifest)
    restarted = wait_for(
        lambda: (
            (s := core.read_namespaced_pod("probed", namespace).status).container_statuses
            and s.container_statuses[0].restart_count >= 1
            and s
        ),
        timeout=120,
        interval=1,
        what="the liveness probe restarting the container",
    )
    last = restarted.container_statuses[0].last_state.terminated
    assert last is not None and last.exit_code != 0  # killed by the kubelet, not exited
    core.delete_namespace(namespace)


# --- the product on the real node ------------------------------------------------------------


def test_trainingjob_trains_in_a_restricted_read_only_container(sandbox, core, custom, operator):
    namespace = make_namespace(core, "rn-train", RESTRICTED)
    sandbox_operator.credentials_secret(sandbox, namespace)
    model = f"iris-{namespace[-6:]}"
    apply(
        sandbox,
        namespace,
        iris_trainingjob("iris", model, evaluation={"gates": [{"metric": "accuracy", "min": 0.8}]}),
    )
    body = wait_phase(custom, "trainingjobs", namespace, "iris", ("Succeeded", "Failed"), 300)
    status = body["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["promoted"] is True and status["metrics"]["accuracy"] >= 0.8
    pods = core.list_namespaced_pod(namespace).items
    assert pods, "the Job's pod is gone before it could be inspected"
    trainer = pods[0]
    security = trainer.spec.containers[0].security_context
    assert security.read_only_root_filesystem is True
    assert security.run_as_non_root is True
    assert trainer.spec.containers[0].image == sandbox.image
    state = trainer.status.container_statuses[0]
    assert state.image_id and state.state.terminated.exit_code == 0
    # The trainer's own termination message, written by the real container.
    written = json.loads(state.state.terminated.message)
    assert written["ok"] is True and written["version"] == "1" and written["model"] == model
    core.delete_namespace(namespace)


def test_modeldeployment_serves_through_its_clusterip_service(sandbox, core, custom, operator):
    """A client pod calls the Service's cluster IP: kube-proxy's rules pick a ready replica."""
    namespace = make_namespace(core, "rn-serve", RESTRICTED)
    sandbox_operator.credentials_secret(sandbox, namespace)
    model = f"iris-{namespace[-6:]}"
    apply(
        sandbox,
        namespace,
        iris_trainingjob("iris", model),
    )
    trained = wait_phase(custom, "trainingjobs", namespace, "iris", ("Succeeded", "Failed"), 300)
    assert trained["status"]["phase"] == "Succeeded", trained["status"].get("message")
    apply(
        sandbox,
        namespace,
        {
            "apiVersion": "ctrain.dev/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {"name": "iris"},
            "spec": {"model": model, "replicas": 2, "progressDeadlineSeconds": 180},
        },
    )

    def available() -> dict[str, Any] | None:
        status = get(custom, "modeldeployments", namespace, "iris").get("status") or {}
        return status if status.get("phase") == "Available" else None

    status = wait_for(available, timeout=300, interval=1, what="iris Available")
    assert status["currentVersion"] == "1"
    service = next(
        s for s in core.list_namespaced_service(namespace).items if s.spec.type == "ClusterIP"
    )
    address, port = service.spec.cluster_ip, service.spec.ports[0].port
    replicas = [
        p
        for p in core.list_namespaced_pod(namespace).items
        if p.status.phase == "Running" and p.metadata.owner_references[0].kind == "ReplicaSet"
    ]
    assert len(replicas) == 2
    for replica in replicas:
        served = replica.spec.containers[0]
        assert served.readiness_probe is not None and served.image == sandbox.image
        assert replica.status.container_statuses[0].ready
    # Two rows of iris in one request to the cluster IP; the predicted classes come back
    # in the client's termination message.
    script = (
        "import json, pathlib, urllib.request\n"
        f"url = 'http://{address}:{port}/v2/models/{model}/infer'\n"
        "rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]\n"
        "body = {'inputs': [{'name': 'input-0', 'shape': [2, 4], 'datatype': 'FP64',"
        " 'data': sum(rows, [])}]}\n"
        "request = urllib.request.Request(url, json.dumps(body).encode(),"
        " {'Content-Type': 'application/json'})\n"
        "answer = json.load(urllib.request.urlopen(request, timeout=10))\n"
        "out = {o['name']: o['data'] for o in answer['outputs']}\n"
        "pathlib.Path('/dev/termination-log').write_text(json.dumps(out['predict']))\n"
    )
    core.create_namespaced_pod(namespace, pod("client", script))
    done = finished(core, namespace, "client")
    terminated = done.status.container_statuses[0].state.terminated
    assert done.status.phase == "Succeeded", terminated.message
    assert json.loads(terminated.message) == ["setosa", "virginica"]
    core.delete_namespace(namespace)
