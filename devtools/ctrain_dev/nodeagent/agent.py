"""The agent's main loop: keep the Node alive, and a worker running for each bound pod."""

import datetime
import logging
import os
import platform
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

import ctrain
import ctrain_dev
from ctrain_dev import host
from ctrain_dev.nodeagent.runtime import PodWorker, Settings

log = logging.getLogger("ctrain_dev.nodeagent")
HEARTBEAT_SECONDS = 10
LEASE_SECONDS = 40
KUBELET_VERSION = "v1.34.4"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def node_manifest(name: str, host_ip: str, kubelet_port: int) -> dict[str, Any]:
    """The Node this agent registers: this machine's capacity, labels like a kubelet's."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory // 1024}Ki",
        "pods": "110",
        "ephemeral-storage": "100Gi",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64" if platform.machine() == "x86_64" else "arm64",
                "node.kubernetes.io/instance-type": "ctrain-sandbox",
            },
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            **node_status(host_ip, name, kubelet_port),
        },
    }


def node_status(host_ip: str, name: str, kubelet_port: int) -> dict[str, Any]:
    now = _now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    return {
        "conditions": [
            condition(
                "Ready", "True", "KubeletReady", "ctrain sandbox node agent is posting ready status"
            ),
            condition(
                "MemoryPressure", "False", "KubeletHasSufficientMemory", "no memory pressure"
            ),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "no disk pressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "no PID pressure"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": host_ip},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": platform.release(),
            "osImage": "ctrain sandbox",
            "containerRuntimeVersion": "ctrain-nodeagent://0.1.0",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64" if platform.machine() == "x86_64" else "arm64",
        },
    }


class PodIPs:
    """One distinct address per pod (10.N.x.y, never the host's 10.N.0.1), reused once freed."""

    def __init__(self, prefix: str) -> None:
        self.network = prefix
        self.used: set[str] = set()
        self.lock = threading.Lock()

    def allocate(self, wanted: str | None = None) -> str:
        with self.lock:
            if wanted and wanted.startswith(self.network + ".") and wanted not in self.used:
                self.used.add(wanted)
                return wanted
            for index in range(2, 250 * 250):
                candidate = f"{self.network}.{index // 250}.{index % 250}"
                if candidate not in self.used:
                    self.used.add(candidate)
                    return candidate
        raise RuntimeError("pod IP range exhausted")

    def release(self, ip: str) -> None:
        with self.lock:
            self.used.discard(ip)


class Agent:
    def __init__(
        self,
        *,
        kubeconfig: str,
        node_name: str,
        state_dir: Path,
        pod_network: int,
        api_port: int,
        kubelet_port: int,
        run_as_pod_user: bool = False,
    ) -> None:
        self.api_client = config.new_client_from_config(kubeconfig)
        self.core = client.CoreV1Api(self.api_client)
        self.coordination = client.CoordinationV1Api(self.api_client)
        self.node_name, self.kubelet_port = node_name, kubelet_port
        self.host_ip = host.host_ip(pod_network)
        self.ips = PodIPs(f"10.{pod_network}")
        self.workers: dict[str, PodWorker] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.settings = Settings(
            state_dir=state_dir,
            host_ip=self.host_ip,
            api_host=self.host_ip,
            pod_network=pod_network,
            # The Python environment and the sources (editable installs) pods run from the host.
            preserve=sorted({sys.prefix, *_source_roots()}),
            api_port=api_port,
            path_prefix=str(Path(sys.executable).parent),
            run_as_pod_user=run_as_pod_user,
        )
        state_dir.mkdir(parents=True, exist_ok=True)

    # --- node ------------------------------------------------------------------------------

    def register(self) -> None:
        manifest = node_manifest(self.node_name, self.host_ip, self.kubelet_port)
        try:
            self.core.create_node(manifest)
        except ApiException as error:
            if error.status != 409:
                raise
        self.core.patch_node_status(self.node_name, {"status": manifest["status"]})
        log.info("node %s registered", self.node_name)

    def heartbeat_forever(self) -> None:
        while not self.stopping.wait(HEARTBEAT_SECONDS):
            try:
                self._heartbeat()
            except ApiException as error:
                log.warning("heartbeat failed: %s", error.reason)

    def _heartbeat(self) -> None:
        status = node_status(self.host_ip, self.node_name, self.kubelet_port)
        self.core.patch_node_status(self.node_name, {"status": status})
        renew = _now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            self.coordination.patch_namespaced_lease(
                self.node_name, "kube-node-lease", {"spec": {"renewTime": renew}}
            )
        except ApiException as error:
            if error.status != 404:
                raise
            node = self.core.read_node(self.node_name)
            lease = {
                "metadata": {
                    "name": self.node_name,
                    "namespace": "kube-node-lease",
                    "ownerReferences": [
                        {
                            "apiVersion": "v1",
                            "kind": "Node",
                            "name": self.node_name,
                            "uid": node.metadata.uid,
                        }
                    ],
                },
                "spec": {
                    "holderIdentity": self.node_name,
                    "leaseDurationSeconds": LEASE_SECONDS,
                    "renewTime": renew,
                },
            }
            self.coordination.create_namespaced_lease("kube-node-lease", lease)

    # --- pods ------------------------------------------------------------------------------

    def _handle(self, pod: dict[str, Any], deleted: bool = False) -> None:
        uid = pod["metadata"]["uid"]
        with self.lock:
            worker = self.workers.get(uid)
            if deleted:
                if worker is not None:
                    worker.stopped.set()
                return
            if worker is not None:
                worker.update(pod)
                return
            phase = (pod.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
                return  # finished before this agent started: nothing left to run
            ip = self.ips.allocate((pod.get("status") or {}).get("podIP"))
            worker = PodWorker(pod, ip, self.core, self.settings, self._worker_done)
            self.workers[uid] = worker
        worker.start()

    def _worker_done(self, uid: str) -> None:
        with self.lock:
            worker = self.workers.pop(uid, None)
        if worker is not None:
            self.ips.release(worker.pod_ip)

    def watch_pods(self) -> None:
        selector = f"spec.nodeName={self.node_name}"
        while not self.stopping.is_set():
            listing = self.core.list_pod_for_all_namespaces(
                field_selector=selector, _preload_content=False
            )
            body = self.api_client.deserialize(listing, "object")  # plain dicts
            for pod in body["items"]:
                self._handle(pod)
            version = body["metadata"]["resourceVersion"]
            stream = watch.Watch()
            try:
                for event in stream.stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=selector,
                    resource_version=version,
                    timeout_seconds=300,
                ):
                    if self.stopping.is_set():
                        break
                    self._handle(event["raw_object"], deleted=event["type"] == "DELETED")
            except ApiException as error:
                if error.status != 410:
                    raise
                log.info("pod watch expired; listing again")

    def shutdown(self) -> None:
        self.stopping.set()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.stop()


def serve(agent: Agent) -> None:
    """Run until SIGTERM/SIGINT, then stop every pod's processes."""

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping pods", signum)
        agent.shutdown()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.register()
    threading.Thread(target=agent.heartbeat_forever, name="heartbeat", daemon=True).start()
    agent._heartbeat()
    while True:
        try:
            agent.watch_pods()
        except (ApiException, OSError) as error:
            log.warning("pod watch failed (%s); retrying", error)
            time.sleep(1)


def _source_roots() -> set[str]:
    """The directories `ctrain` and `ctrain_dev` are imported from (the checkout's source
    roots when installed editable), which a volume over them must not hide."""
    return {
        str(Path(str(package.__file__)).resolve().parents[1]) for package in (ctrain, ctrain_dev)
    }
