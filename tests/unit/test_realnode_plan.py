"""The sandbox's real node, its pure parts: state, addresses, and what the node is given."""

import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from ctrain_dev.sandbox import realnode, sandbox
from ctrain_dev.sandbox.pki import ensure_pki

pytestmark = pytest.mark.unit

LAYOUT = realnode.Layout(network=42, node_name="ctrain-node")


def test_a_state_saved_by_an_older_sandbox_loads_and_is_not_taken_as_running(tmp_path):
    """An older state.json names a node kind and no image: its node ran pods as processes,
    so `up` must clean it up and start anew rather than reuse it."""
    (tmp_path / "state.json").write_text(
        json.dumps(
            {
                "directory": str(tmp_path),
                "ports": {},
                "pod_network": 7,
                "processes": [],
                "bin_dirs": [],
                "node_kind": "agent",
            }
        )
    )
    state = sandbox.State.load(tmp_path)
    assert state is not None and state.image == "" and state.node.node_ip == "10.7.0.2"
    assert sandbox.running(tmp_path) is None


def test_addresses_stay_inside_the_sandbox_network():
    assert LAYOUT.host_ip == "10.42.0.1" and LAYOUT.node_ip == "10.42.0.2"
    assert LAYOUT.pod_cidr == "10.42.128.0/17"
    # Linux caps interface names at 15 characters.
    assert len(LAYOUT.veth) <= 15 and LAYOUT.container == "ctrain-sandbox-42-node"


def test_pods_get_addresses_from_the_routed_range():
    ipam = realnode.cni_config(LAYOUT)["plugins"][0]["ipam"]
    assert ipam["ranges"] == [[{"subnet": "10.42.128.0/17"}]]


def test_the_kubelet_authenticates_every_caller():
    config = realnode.kubelet_config()
    assert config["authentication"]["anonymous"] == {"enabled": False}
    assert config["authorization"] == {"mode": "Webhook"}
    assert config["staticPodPath"] == "/etc/kubernetes/manifests"


def test_kube_proxy_is_a_static_pod_of_the_imported_image():
    pod = realnode.kube_proxy_pod("registry.example/kube-proxy:v1.34.4", LAYOUT)
    proxy = pod["spec"]["containers"][0]
    assert proxy["imagePullPolicy"] == "Never"  # nothing can be pulled
    assert "--cluster-cidr=10.42.128.0/17" in proxy["command"]
    assert "--hostname-override=ctrain-node" in proxy["command"]


def test_node_files_carry_the_node_identity(tmp_path: Path):
    pki = ensure_pki(tmp_path / "pki", "ctrain-node", LAYOUT.host_ip)
    files = realnode.node_files(LAYOUT, pki, 6443, "kube-proxy:v1")
    kubeconfig = yaml.safe_load(files["/etc/kubernetes/kubelet.conf"])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://10.42.0.1:6443"
    client = x509.load_pem_x509_certificate(files["/etc/kubernetes/pki/node.crt"])
    assert client.subject.rfc4514_string() == "O=system:nodes,CN=system:node:ctrain-node"
    serving = x509.load_pem_x509_certificate(files["/etc/kubernetes/pki/kubelet.crt"])
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.42.0.2" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    flags = files["/var/lib/kubelet/kubeadm-flags.env"].decode()
    assert "--node-ip=10.42.0.2" in flags
    # Issued once: a second call gives the same certificates.
    again = realnode.node_files(LAYOUT, pki, 6443, "kube-proxy:v1")
    assert again["/etc/kubernetes/pki/node.crt"] == files["/etc/kubernetes/pki/node.crt"]
