"""The sandbox behaves as a cluster for what an operator relies on (real control plane)."""

import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ctrain_dev.sandbox import sandbox as sandbox_module
from kubehelpers import condition, container, wait_for

pytestmark = pytest.mark.integration

POD_IP_ENV = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]


def http_server(name: str = "web", path: str = "/") -> dict:
    return container(
        name,
        ["python3", "-m", "http.server", "--bind", "$(POD_IP)", "8080"],
        env=POD_IP_ENV,
        ports=[{"containerPort": 8080, "name": "http"}],
        readinessProbe={"httpGet": {"path": path, "port": "http"}, "periodSeconds": 1},
    )


def deployment(name: str, replicas: int) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [http_server()]}},
        },
    }


def job(name: str, command: list[str], backoff_limit: int = 0) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": backoff_limit,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [container("main", command)]}
            },
        },
    }


def pods_of(core: client.CoreV1Api, namespace: str, selector: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=selector).items


def test_deployment_becomes_available_and_every_pod_ip_answers(apps, core, namespace):
    apps.create_namespaced_deployment(namespace, deployment("web", 2))
    wait_for(
        lambda: (
            (d := apps.read_namespaced_deployment("web", namespace)).status.available_replicas == 2
            and d
        ),
        what="deployment web Available with 2 replicas",
    )
    pods = pods_of(core, namespace, "app=web")
    ips = {pod.status.pod_ip for pod in pods}
    assert len(ips) == 2, ips
    for ip in ips:
        assert ip.startswith("10.")
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as response:
            assert response.status == 200


def test_endpointslice_lists_exactly_the_ready_pods(apps, core, namespace, api_client):
    apps.create_namespaced_deployment(namespace, deployment("web", 2))
    # A third pod with the same labels whose readiness probe always fails.
    unready = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unready", "labels": {"app": "web"}},
        "spec": {"containers": [http_server(path="/does-not-exist")]},
    }
    core.create_namespaced_pod(namespace, unready)
    core.create_namespaced_service(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    discovery = client.DiscoveryV1Api(api_client)

    def ready_pods() -> set[str]:
        return {
            p.status.pod_ip
            for p in pods_of(core, namespace, "app=web")
            if (c := condition(p, "Ready")) is not None and c.status == "True"
        }

    def slices_match() -> tuple[set[str], set[str]] | None:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web"
        ).items
        ready = {
            address
            for s in slices
            for e in s.endpoints or []
            if e.conditions.ready
            for address in e.addresses
        }
        listed = {address for s in slices for e in s.endpoints or [] for address in e.addresses}
        expected = ready_pods()
        unready_ip = core.read_namespaced_pod("unready", namespace).status.pod_ip
        if len(expected) == 2 and ready == expected and unready_ip in listed - ready:
            return ready, listed
        return None

    wait_for(slices_match, what="EndpointSlice with the 2 ready pods, the unready one not ready")


def test_job_completes_and_its_termination_message_reaches_pod_status(batch, core, namespace):
    batch.create_namespaced_job(
        namespace, job("ok", ["sh", "-c", "echo -n '{\"ok\": true}' > /dev/termination-log"])
    )
    wait_for(
        lambda: (
            (c := condition(batch.read_namespaced_job("ok", namespace), "Complete"))
            and c.status == "True"
        ),
        what="job ok Complete",
    )
    (pod,) = pods_of(core, namespace, "job-name=ok")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert terminated.reason == "Completed"
    assert json.loads(terminated.message) == {"ok": True}


def test_failing_job_fails_after_backoff_limit_with_exit_code(batch, core, namespace):
    batch.create_namespaced_job(namespace, job("bad", ["sh", "-c", "exit 3"], backoff_limit=1))
    failed = wait_for(
        lambda: (
            (c := condition(batch.read_namespaced_job("bad", namespace), "Failed"))
            and c.status == "True"
            and c
        ),
        timeout=180,
        what="job bad Failed",
    )
    assert failed.reason == "BackoffLimitExceeded"
    pods = pods_of(core, namespace, "job-name=bad")
    assert len(pods) == 2  # the first try and one retry
    for pod in pods:
        assert pod.status.phase == "Failed"
        terminated = pod.status.container_statuses[0].state.terminated
        assert (terminated.exit_code, terminated.reason) == (3, "Error")


def test_deleting_an_owner_garbage_collects_its_children(apps, core, namespace):
    apps.create_namespaced_deployment(namespace, deployment("web", 1))
    wait_for(lambda: pods_of(core, namespace, "app=web"), what="pods of deployment web")
    apps.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_for(
        lambda: (
            not apps.list_namespaced_replica_set(namespace).items
            and not pods_of(core, namespace, "app=web")
        ),
        what="replicasets and pods gone",
    )


def test_restricted_namespace_rejects_a_privileged_pod(core, namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "busybox",
                    "command": ["true"],
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    with pytest.raises(ApiException) as raised:
        core.create_namespaced_pod(namespace, pod)
    assert raised.value.status == 403
    message = json.loads(raised.value.body)["message"]
    assert 'violates PodSecurity "restricted:latest"' in message
    assert "privileged" in message


def test_pod_talks_to_the_api_as_its_service_account(core, namespace, api_client):
    """Projected token, kube-root-ca.crt and the in-cluster env reach the real apiserver."""
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
        },
    )
    # The authorizer learns of the binding from its watch: wait until it allows the read.
    review = {
        "spec": {
            "user": f"system:serviceaccount:{namespace}:default",
            "resourceAttributes": {"namespace": namespace, "verb": "get", "resource": "pods"},
        }
    }
    authorization = client.AuthorizationV1Api(api_client)
    wait_for(
        lambda: authorization.create_subject_access_review(review).status.allowed,
        what="the binding to take effect",
    )
    script = (
        "import os, pathlib; from kubernetes import client, config; config.load_incluster_config();"
        "pod = client.CoreV1Api().read_namespaced_pod(os.environ['NAME'], os.environ['NS']);"
        "pathlib.Path('/dev/termination-log').write_text(pod.metadata.uid)"
    )
    env = [
        {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "incluster"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    # A traceback, if any, becomes the termination message.
                    container(
                        "main",
                        ["python3", "-c", script],
                        env=env,
                        terminationMessagePolicy="FallbackToLogsOnError",
                    )
                ],
            },
        },
    )
    pod = wait_for(
        lambda: (
            (p := core.read_namespaced_pod("incluster", namespace)).status.phase
            in ("Succeeded", "Failed")
            and p
        ),
        what="pod incluster finished",
    )
    terminated = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Succeeded", terminated.message
    # Its own uid, read through the API: the kubelet may not have reported its IP yet.
    assert terminated.message == pod.metadata.uid


def test_secret_and_configmap_reach_env_and_volumes(core, namespace):
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"key": "s3cret"}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast"}}
    )
    script = 'echo -n "$SECRET $(cat /etc/settings/mode)" > /dev/termination-log'
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "reader"},
            "spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "settings", "configMap": {"name": "settings"}}],
                "containers": [
                    container(
                        "main",
                        ["sh", "-c", script],
                        env=[
                            {
                                "name": "SECRET",
                                "valueFrom": {"secretKeyRef": {"name": "creds", "key": "key"}},
                            }
                        ],
                        volumeMounts=[
                            {"name": "settings", "mountPath": "/etc/settings", "readOnly": True}
                        ],
                    )
                ],
            },
        },
    )
    pod = wait_for(
        lambda: (
            (p := core.read_namespaced_pod("reader", namespace)).status.phase == "Succeeded" and p
        ),
        what="pod reader Succeeded",
    )
    assert pod.status.container_statuses[0].state.terminated.message == "s3cret fast"


def test_kubectl_auth_can_i_and_impersonation(sandbox, namespace):
    kubectl = next(d for d in sandbox.bin_dirs if (Path(d) / "kubectl").exists())
    base = [f"{kubectl}/kubectl", f"--kubeconfig={sandbox.kubeconfig}", "auth", "can-i"]
    account = f"system:serviceaccount:{namespace}:default"
    admin = subprocess.run(
        [*base, "create", "pods", "-n", namespace], capture_output=True, text=True, check=False
    )
    assert admin.stdout.strip() == "yes"
    denied = subprocess.run(
        [*base, "list", "secrets", "-n", namespace, f"--as={account}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert denied.stdout.strip() == "no"


def test_s3_object_roundtrip(s3):
    key = f"roundtrip/{uuid.uuid4().hex}.txt"
    s3.put_object(Bucket="datasets", Key=key, Body=b"hello")
    assert s3.get_object(Bucket="datasets", Key=key)["Body"].read() == b"hello"


def test_dev_env_prints_exports_for_the_sandbox(sandbox):
    result = subprocess.run(
        [sys.executable, "-m", "ctrain.cli", "dev", "env", "--dir", sandbox.directory],
        capture_output=True,
        text=True,
        check=True,
    )
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in result.stdout.splitlines()
    )
    assert exports["KUBECONFIG"] == str(sandbox.kubeconfig)
    assert exports["AWS_ENDPOINT_URL"] == sandbox.s3_endpoint
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "PATH"} <= set(
        exports
    )


def test_dev_status_shows_the_processes(sandbox):
    result = subprocess.run(
        [sys.executable, "-m", "ctrain.cli", "dev", "status", "--dir", sandbox.directory],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "s3"):
        assert any(line.startswith(name) and "running" in line for line in lines)
    node = next(line for line in lines if line.startswith(f"node {sandbox.node_name}:"))
    assert f"container {sandbox.node.container} (running)" in node
    assert f"image {sandbox.image}" in node


def test_up_twice_is_harmless(sandbox):
    again = sandbox_module.up(Path(sandbox.directory), say=lambda _message: None)
    assert [p["pid"] for p in again.processes] == [p["pid"] for p in sandbox.processes]


def test_dev_logs_prints_a_container_log(sandbox, core, namespace):
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "talker"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [container("main", ["sh", "-c", "echo hello from the pod"])],
            },
        },
    )
    wait_for(
        lambda: core.read_namespaced_pod("talker", namespace).status.phase == "Succeeded",
        what="pod talker Succeeded",
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctrain.cli",
            "dev",
            "logs",
            "talker",
            "-n",
            namespace,
            "--dir",
            sandbox.directory,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "hello from the pod\n"


def test_init_container_probes_and_restarts(core, namespace):
    """Init containers run first and share an emptyDir; tcpSocket readiness gates Ready; a
    failing exec liveness probe restarts the container and keeps the old state."""
    script = (
        "import os, socket, sys, time\n"
        "if not os.path.exists('/work/prepared'): sys.exit(2)\n"
        "s = socket.socket(); s.bind(('0.0.0.0', 9000)); s.listen()\n"
        "open('/work/alive', 'w').close(); time.sleep(4); os.remove('/work/alive')\n"
        "time.sleep(3600)\n"
    )
    mount = [{"name": "work", "mountPath": "/work"}]
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": "lifecycle"},
            "spec": {
                "volumes": [{"name": "work", "emptyDir": {}}],
                "initContainers": [
                    container("prepare", ["sh", "-c", "touch /work/prepared"], volumeMounts=mount)
                ],
                "containers": [
                    container(
                        "main",
                        ["python3", "-c", script],
                        volumeMounts=mount,
                        readinessProbe={"tcpSocket": {"port": 9000}, "periodSeconds": 1},
                        livenessProbe={
                            "exec": {"command": ["test", "-e", "/work/alive"]},
                            "initialDelaySeconds": 2,
                            "periodSeconds": 1,
                            "failureThreshold": 1,
                        },
                    )
                ],
            },
        },
    )
    pod = wait_for(
        lambda: (
            (p := core.read_namespaced_pod("lifecycle", namespace))
            and (c := condition(p, "Ready")) is not None
            and c.status == "True"
            and p
        ),
        what="pod lifecycle Ready through its tcpSocket probe",
    )
    (init,) = pod.status.init_container_statuses
    assert (init.state.terminated.exit_code, init.state.terminated.reason) == (0, "Completed")
    restarted = wait_for(
        lambda: (
            (p := core.read_namespaced_pod("lifecycle", namespace))
            .status.container_statuses[0]
            .restart_count
            >= 1
            and p
        ),
        timeout=60,
        what="a restart after the liveness probe failed",
    )
    last = restarted.status.container_statuses[0].last_state.terminated
    assert last is not None
    assert last.exit_code != 0  # killed by the kubelet
