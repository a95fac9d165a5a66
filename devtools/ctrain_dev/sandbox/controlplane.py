"""Command lines and health checks for the sandbox's control-plane processes.

The argv builders are pure so the unit tests can check every flag that matters
(TLS, RBAC, admission, ServiceAccount issuer and keys) without starting anything.
"""

import dataclasses
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from ctrain_dev import host
from ctrain_dev.sandbox.binaries import Binaries
from ctrain_dev.sandbox.preflight import SandboxError, explain_exit

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Room for a Service per ModelDeployment at the scale the operator benchmark runs (a /24
# holds 254 and refuses the rest); pod networks are 10.16.0.0/16 and up, apart from it.
SERVICE_CIDR = "10.0.0.0/16"


@dataclasses.dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    s3: int

    @classmethod
    def free(cls) -> "Ports":
        """Ask the kernel for distinct free ports (so several sandboxes can coexist)."""
        sockets = []
        for _ in dataclasses.fields(cls):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        ports = [sock.getsockname()[1] for sock in sockets]
        for sock in sockets:
            sock.close()
        return cls(*ports)


def etcd_argv(binaries: Binaries, data_dir: Path, ports: Ports) -> list[str]:
    client = f"http://127.0.0.1:{ports.etcd_client}"
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    return [
        str(binaries["etcd"]),
        "--name=sandbox",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=sandbox={peer}",
        "--unsafe-no-fsync",  # a throwaway store: speed over durability
        "--log-level=warn",
    ]


def apiserver_argv(binaries: Binaries, pki: Path, ports: Ports, host_ip: str) -> list[str]:
    return [
        str(binaries["kube-apiserver"]),
        f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
        # The bridge address: reachable from this host and from every pod, nowhere else.
        f"--bind-address={host_ip}",
        f"--advertise-address={host_ip}",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={pki / 'apiserver-generated'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",  # PodSecurity is on by default
        "--allow-privileged=true",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--profiling=false",
        "--v=1",
    ]


def controller_manager_argv(
    binaries: Binaries, pki: Path, kubeconfig: Path, ports: Ports
) -> list[str]:
    return [
        str(binaries["kube-controller-manager"]),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.controller_manager}",
        f"--cert-dir={pki / 'controller-manager-generated'}",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--use-service-account-credentials=true",
        "--leader-elect=false",
        "--cluster-name=ctrain-sandbox",
        "--v=1",
    ]


def scheduler_argv(binaries: Binaries, pki: Path, kubeconfig: Path, ports: Ports) -> list[str]:
    return [
        str(binaries["kube-scheduler"]),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={ports.scheduler}",
        f"--cert-dir={pki / 'scheduler-generated'}",
        "--leader-elect=false",
        "--v=1",
    ]


def kubeconfig(server: str, pki: Path, user: str, cert_stem: str) -> dict[str, object]:
    """An admin-style kubeconfig that authenticates with a client certificate."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "ctrain-sandbox",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{cert_stem}.crt"),
                    "client-key": str(pki / f"{cert_stem}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "ctrain-sandbox", "context": {"cluster": "ctrain-sandbox", "user": user}}
        ],
        "current-context": "ctrain-sandbox",
    }


def write_kubeconfig(path: Path, config: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


def wait_http(
    url: str,
    timeout: float,
    *,
    context: ssl.SSLContext | None = None,
    alive: "object | None" = None,
    process: "host.Process | None" = None,
) -> None:
    """Poll `url` until it answers 200; raise TimeoutError naming the URL otherwise.

    If the process behind it exits first, raise SandboxError saying why, from its log.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            last = f"HTTP {error.code}"
        except (urllib.error.URLError, OSError) as error:
            last = str(error)
        if alive is not None and not alive():  # type: ignore[operator]
            if process is not None:
                raise SandboxError(explain_exit(process.name, Path(process.log)))
            raise SandboxError(f"the process behind {url} exited; see its log")
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not become healthy in {timeout:.0f}s (last: {last})")


def client_tls(pki: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return context
