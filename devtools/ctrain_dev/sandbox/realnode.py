"""A real node for the sandbox: kubelet, containerd and kube-proxy running real containers.

The node is a container of the kind node image (`ctrain_dev.containers.nodeimage`): systemd,
containerd and a kubelet, isolated in its own network, cgroup and mount namespaces so
several sandboxes can each have one. It has no Docker network of its own; a veth pair
puts its `eth0` on the sandbox bridge as `10.N.0.2`, next to the control plane on
`10.N.0.1`. Its pods get addresses from `10.N.128.0/17` (CNI `ptp`), which this machine
routes to the node, so this machine (the tests, an operator run as a local process)
reaches every pod at its address.
kube-proxy runs as a static pod, so ClusterIP Services work inside the node. The ctrain
image of the checkout is imported into the node's containerd; nothing is pulled.

The kubelet authenticates with the sandbox CA's `system:node:<name>` certificate and
serves with one for the node's address, so `kubectl logs` and `exec` work as on any
cluster.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ctrain_dev.containers import engine as engine_module
from ctrain_dev.containers import nodeimage
from ctrain_dev.sandbox import pki
from ctrain_dev.sandbox.operator import CHART_IMAGE
from ctrain_dev.sandbox.preflight import SandboxError

Say = Callable[[str], None]
NODE_CPU_SHARES = 16384


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Layout:
    """Names and addresses of one sandbox's node (`network` is the sandbox's N)."""

    network: int
    node_name: str

    @property
    def container(self) -> str:
        return f"ctrain-sandbox-{self.network}-node"

    @property
    def node_ip(self) -> str:
        return f"10.{self.network}.0.2"

    @property
    def host_ip(self) -> str:
        return f"10.{self.network}.0.1"

    @property
    def pod_cidr(self) -> str:
        return f"10.{self.network}.128.0/17"

    @property
    def veth(self) -> str:
        return f"ctrain{self.network}-node"


def kubelet_config() -> dict[str, Any]:
    """The kubelet's configuration: x509 and webhook auth, no evictions on a busy disk."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": "/etc/kubernetes/pki/ca.crt"},
        },
        "authorization": {"mode": "Webhook"},
        # As kind's nodes: systemd drives the cgroups under /kubelet (the image's
        # entrypoint prepares that root), swap is tolerated, the disk never evicts.
        "cgroupDriver": "systemd",
        "cgroupRoot": "/kubelet",
        "failSwapOn": False,
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "staticPodPath": "/etc/kubernetes/manifests",
        "tlsCertFile": "/etc/kubernetes/pki/kubelet.crt",
        "tlsPrivateKeyFile": "/etc/kubernetes/pki/kubelet.key",
        "evictionHard": {
            "imagefs.available": "0%",
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
        },
        "imageGCHighThresholdPercent": 100,
        "serializeImagePulls": False,
    }


def cni_config(layout: Layout) -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": "ctrain-sandbox",
        "plugins": [
            {
                "type": "ptp",
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": layout.pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kube_proxy_pod(image: str, layout: Layout) -> dict[str, Any]:
    """kube-proxy as a static pod of the node (iptables in the node's own namespace)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-proxy", "namespace": "kube-system"},
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical",
            "containers": [
                {
                    "name": "kube-proxy",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": [
                        "kube-proxy",
                        "--kubeconfig=/etc/kubernetes/kube-proxy.conf",
                        f"--cluster-cidr={layout.pod_cidr}",
                        f"--hostname-override={layout.node_name}",
                        # nf_conntrack_max is the machine's, not the node's: leave it.
                        "--conntrack-max-per-core=0",
                    ],
                    "securityContext": {"privileged": True},
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/kubernetes", "readOnly": True},
                        {"name": "modules", "mountPath": "/lib/modules", "readOnly": True},
                    ],
                }
            ],
            "volumes": [
                {"name": "config", "hostPath": {"path": "/etc/kubernetes"}},
                {"name": "modules", "hostPath": {"path": "/lib/modules"}},
            ],
        },
    }


def kubeconfig(server: str, user: str, cert: str, key: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "sandbox",
                "cluster": {
                    "server": server,
                    "certificate-authority": "/etc/kubernetes/pki/ca.crt",
                },
            }
        ],
        "users": [{"name": user, "user": {"client-certificate": cert, "client-key": key}}],
        "contexts": [{"name": "sandbox", "context": {"cluster": "sandbox", "user": user}}],
        "current-context": "sandbox",
    }


def node_files(
    layout: Layout, pki_dir: Path, apiserver_port: int, proxy_image: str
) -> dict[str, bytes]:
    """Every file the node needs, by its path in the node (certificates issued once)."""
    kubelet_cert, kubelet_key = pki.issue(
        pki_dir,
        f"kubelet-{layout.network}",
        f"system:node:{layout.node_name}",
        "system:nodes",
        server_names=[layout.node_name, "localhost"],
        server_ips=[layout.node_ip, "127.0.0.1"],
    )
    client_cert, client_key = pki.issue(
        pki_dir, f"node-{layout.node_name}", f"system:node:{layout.node_name}", "system:nodes"
    )
    proxy_cert, proxy_key = pki.issue(pki_dir, "kube-proxy", "system:kube-proxy")
    server = f"https://{layout.host_ip}:{apiserver_port}"
    certs = "/etc/kubernetes/pki"
    node = kubeconfig(
        server, f"system:node:{layout.node_name}", f"{certs}/node.crt", f"{certs}/node.key"
    )
    proxy = kubeconfig(
        server, "system:kube-proxy", f"{certs}/kube-proxy.crt", f"{certs}/kube-proxy.key"
    )
    flags = (
        f'KUBELET_KUBEADM_ARGS="--node-ip={layout.node_ip} '
        f"--hostname-override={layout.node_name} "
        '--node-labels=node.kubernetes.io/instance-type=ctrain-sandbox"\n'
    )
    return {
        f"{certs}/ca.crt": (pki_dir / "ca.crt").read_bytes(),
        f"{certs}/node.crt": client_cert.read_bytes(),
        f"{certs}/node.key": client_key.read_bytes(),
        f"{certs}/kubelet.crt": kubelet_cert.read_bytes(),
        f"{certs}/kubelet.key": kubelet_key.read_bytes(),
        f"{certs}/kube-proxy.crt": proxy_cert.read_bytes(),
        f"{certs}/kube-proxy.key": proxy_key.read_bytes(),
        "/etc/kubernetes/kubelet.conf": yaml.safe_dump(node).encode(),
        "/etc/kubernetes/kube-proxy.conf": yaml.safe_dump(proxy).encode(),
        "/var/lib/kubelet/config.yaml": yaml.safe_dump(kubelet_config()).encode(),
        "/var/lib/kubelet/kubeadm-flags.env": flags.encode(),
        "/etc/cni/net.d/10-ctrain-sandbox.conflist": json.dumps(cni_config(layout)).encode(),
        "/etc/kubernetes/manifests/kube-proxy.yaml": yaml.safe_dump(
            kube_proxy_pod(proxy_image, layout)
        ).encode(),
    }


# --- lifecycle -------------------------------------------------------------------------


def workload_images(say: Say = _stderr) -> list[str]:
    """The ctrain image for the node: `$CTRAIN_SANDBOX_IMAGE`, or built from this checkout.

    Built as `ctrain:dev` (what `make image` makes) and also named as the chart's default
    (`ctrain/ctrain:dev`), so an installed chart runs it without settings.
    """
    configured = os.environ.get("CTRAIN_SANDBOX_IMAGE")
    if configured:
        return [configured]
    from ctrain_dev.containers import image

    checkout = Path(__file__).resolve().parents[3]
    if not (checkout / "Dockerfile").is_file():
        raise SandboxError(
            f"no Dockerfile in {checkout}: set CTRAIN_SANDBOX_IMAGE to the ctrain image to run"
        )
    built = image.build(checkout, image.DEFAULT_TAG, say=say)
    engine_module.find(say).docker("tag", built, CHART_IMAGE)
    return [built, CHART_IMAGE]


def _run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SandboxError(f"`{' '.join(argv[:4])}` failed: {done.stderr.strip()[:300]}")
    return done.stdout


def start(
    layout: Layout,
    pki_dir: Path,
    apiserver_port: int,
    workload_images: list[str],
    say: Say = _stderr,
) -> None:
    """Start the node container, wire it to the sandbox bridge, give it its files and images."""
    found = engine_module.find(say)
    node_image = nodeimage.node_image(found, say)
    proxy_image = next(
        image for image in nodeimage.kubeadm_images(nodeimage.tools.node_dir() / "kubeadm")
        if nodeimage.component(image) == "kube-proxy"
    )  # fmt: skip
    stop(layout)
    say(f"starting the node {layout.node_name} (kubelet, containerd) at {layout.node_ip}")
    # What kind gives a node: privileged, its own cgroup namespace, systemd's writable
    # /run and /tmp, /var on a volume (overlay on overlay would not do for containerd).
    # CPU weight: on cgroup v1 every busy process of this machine's root group weighs as
    # much as a whole container by default; the node stands for all its pods' processes,
    # so it weighs as much as NODE_CPU_SHARES / 1024 of them.
    found.docker(
        "run", "--detach", "--name", layout.container, "--hostname", layout.node_name,
        f"--cpu-shares={NODE_CPU_SHARES}",
        "--privileged", "--security-opt", "seccomp=unconfined",
        "--security-opt", "apparmor=unconfined", "--cgroupns=private", "--network=none",
        "--tmpfs", "/tmp", "--tmpfs", "/run", "--volume", "/var",
        "--volume", "/lib/modules:/lib/modules:ro", "--tty", node_image,
    )  # fmt: skip
    pid = found.docker("inspect", "--format", "{{.State.Pid}}", layout.container).strip()
    _wire(layout, pid)
    for path, content in node_files(layout, pki_dir, apiserver_port, proxy_image).items():
        found.docker(
            "exec", "--interactive", layout.container, "sh", "-c",
            f"mkdir -p $(dirname {path}) && cat > {path}", stdin=content,
        )  # fmt: skip
    _wait(lambda: _containerd_ready(found, layout), 120, "containerd in the node")
    say(f"importing {', '.join(workload_images)} into the node")
    _import(found, layout, workload_images)
    found.docker("exec", layout.container, "systemctl", "restart", "kubelet")


def _wire(layout: Layout, pid: str) -> None:
    """eth0 of the node on the sandbox bridge; this machine routes the pods to it."""
    _run("ip", "link", "add", layout.veth, "type", "veth", "peer", "name", "eth0", "netns", pid)
    _run("ip", "link", "set", layout.veth, "master", f"ctrain{layout.network}", "up")
    inside = ["nsenter", f"--target={pid}", "--net", "--"]
    _run(*inside, "ip", "addr", "add", f"{layout.node_ip}/17", "dev", "eth0")
    _run(*inside, "ip", "link", "set", "lo", "up")
    _run(*inside, "ip", "link", "set", "eth0", "up")
    _run(*inside, "ip", "route", "add", "default", "via", layout.host_ip)
    # The node routes between its pods and the bridge; a new network namespace may start
    # with forwarding off.
    _run(*inside, "sysctl", "--quiet", "--write", "net.ipv4.ip_forward=1")
    _run("ip", "route", "replace", layout.pod_cidr, "via", layout.node_ip)


def _containerd_ready(found: engine_module.Engine, layout: Layout) -> bool:
    done = subprocess.run(
        ["docker", "exec", layout.container, "ctr", "version"],
        capture_output=True, env=found.env, check=False,
    )  # fmt: skip
    return done.returncode == 0


def _import(found: engine_module.Engine, layout: Layout, images: list[str]) -> None:
    """One archive for all names: shared layers cross the pipe once."""
    save = subprocess.Popen(["docker", "save", *images], stdout=subprocess.PIPE, env=found.env)
    load = subprocess.run(
        ["docker", "exec", "--interactive", layout.container, "ctr", "--namespace=k8s.io",
         "images", "import", "--digests", "-"],
        stdin=save.stdout, capture_output=True, env=found.env, check=False,
    )  # fmt: skip
    save.wait()
    if save.returncode or load.returncode:
        raise SandboxError(
            f"importing {images} into the node failed: {load.stderr.decode()[-300:]}"
        )


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise SandboxError(f"{what} not ready after {timeout:.0f}s")


def running(layout: Layout) -> bool:
    """True if the node container runs (False also where no engine answers)."""
    try:
        found = engine_module.find(start=False)
    except engine_module.errors.EngineError:
        return False
    state = found.docker(
        "inspect", "--format", "{{.State.Running}}", layout.container, check=False
    ).strip()
    return state == "true"


def stop(layout: Layout) -> None:
    """Remove the node container (its pods go with it), its route and its veth."""
    try:
        found = engine_module.find(start=False)
    except engine_module.errors.EngineError:
        found = None
    if found is not None:
        found.docker("rm", "--force", "--volumes", layout.container, check=False)
    subprocess.run(["ip", "route", "del", layout.pod_cidr], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", layout.veth], capture_output=True, check=False)
