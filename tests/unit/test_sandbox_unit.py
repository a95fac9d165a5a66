"""The sandbox's pure parts: component command lines, PKI, process identity."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from ctrain_dev import host
from ctrain_dev.sandbox import controlplane, pki
from ctrain_dev.sandbox.binaries import (
    ETCD_VERSION,
    HELM_VERSION,
    KUBERNETES_VERSION,
    Binaries,
    go_build_commands,
)

pytestmark = pytest.mark.unit

BINARIES = Binaries(
    {
        name: Path(f"/bin/{name}")
        for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
    }
)
PORTS = controlplane.Ports(2379, 2380, 6443, 10257, 10259, 9000)


def test_apiserver_runs_with_tls_rbac_admission_and_service_account_keys():
    argv = controlplane.apiserver_argv(BINARIES, Path("/pki"), PORTS, "10.9.0.1")
    flags = dict(arg.split("=", 1) for arg in argv[1:])
    assert flags["--authorization-mode"] == "Node,RBAC"
    assert "NodeRestriction" in flags["--enable-admission-plugins"]
    assert "--disable-admission-plugins" not in flags  # PodSecurity stays on (a default plugin)
    assert flags["--client-ca-file"] == "/pki/ca.crt"
    assert flags["--tls-cert-file"] == "/pki/apiserver.crt"
    assert flags["--service-account-issuer"] == controlplane.SERVICE_ACCOUNT_ISSUER
    assert flags["--service-account-signing-key-file"] == "/pki/sa.key"
    assert flags["--secure-port"] == "6443"
    assert flags["--etcd-servers"] == "http://127.0.0.1:2379"
    assert flags["--bind-address"] == flags["--advertise-address"] == "10.9.0.1"


def test_controller_manager_signs_tokens_and_publishes_the_root_ca():
    argv = controlplane.controller_manager_argv(BINARIES, Path("/pki"), Path("/k"), PORTS)
    assert "--service-account-private-key-file=/pki/sa.key" in argv
    assert "--root-ca-file=/pki/ca.crt" in argv
    assert "--use-service-account-credentials=true" in argv


def test_free_ports_are_distinct():
    ports = controlplane.Ports.free()
    values = list(ports.__dict__.values())
    assert len(set(values)) == len(values)


def test_go_builds_are_pinned_and_stamp_the_version():
    (kube_dir, kube_argv, kube_out), (helm_dir, _, _) = go_build_commands()

    def pinned(directory: Path, module: str) -> str:
        match = re.search(
            rf"^\s*(?:require\s+)?{re.escape(module)} (\S+)$",
            (directory / "go.mod").read_text(),
            re.MULTILINE,
        )
        assert match, module
        return match.group(1)

    # The constants the cache is keyed by match what the wrapper modules pin.
    assert pinned(kube_dir, "k8s.io/kubernetes") == KUBERNETES_VERSION
    assert pinned(kube_dir, "go.etcd.io/etcd/server/v3") == ETCD_VERSION
    assert pinned(helm_dir, "helm.sh/helm/v3") == HELM_VERSION
    assert (kube_dir / "go.sum").exists() and (helm_dir / "go.sum").exists()
    assert "k8s.io/component-base/version.gitVersion=v1.34.4" in " ".join(kube_argv)
    assert kube_out.name == "kube-v1.34.4-etcd-v3.6.4"


def test_pki_certificates_carry_the_identities(tmp_path):
    directory = pki.ensure_pki(tmp_path / "pki", "node-a", "10.9.0.1")
    serving = x509.load_pem_x509_certificate((directory / "apiserver.crt").read_bytes())
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    assert {str(ip) for ip in names.get_values_for_type(x509.IPAddress)} == {
        "127.0.0.1",
        "10.9.0.1",
        "10.0.0.1",
    }
    node = x509.load_pem_x509_certificate((directory / "node.crt").read_bytes())
    assert node.subject.rfc4514_string() == "O=system:nodes,CN=system:node:node-a"
    admin = x509.load_pem_x509_certificate((directory / "admin.crt").read_bytes())
    assert "O=system:masters" in admin.subject.rfc4514_string()
    assert (directory / "ca.key").stat().st_mode & 0o777 == 0o600
    before = (directory / "ca.crt").read_bytes()
    pki.ensure_pki(directory, "node-a", "10.9.0.1")
    assert (directory / "ca.crt").read_bytes() == before  # reused, not regenerated


def test_process_identity_survives_only_for_the_same_process(tmp_path):
    process = host.spawn(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "log"
    )
    assert process.alive()
    impostor = host.Process("x", process.pid, process.started + 1, "")
    assert not impostor.alive()  # a recycled pid with another start time is not ours
    host.stop(process, grace_seconds=5)
    assert not process.alive()
    host.stop(process)  # stopping twice is harmless
    assert subprocess.run(["true"], check=False).returncode == 0


def test_kubebuilder_assets_take_precedence(tmp_path, monkeypatch):
    """Binaries found in $KUBEBUILDER_ASSETS (the envtest convention) are used as they are;
    only what is missing there comes from the cache (built when absent)."""
    from ctrain_dev.sandbox import binaries as module

    assets = tmp_path / "assets"
    assets.mkdir()
    for name in module.ALL_BINARIES:
        path = assets / name
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(assets))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(module, "_run_go_build", _no_build)
    found = module.ensure_binaries(lambda _message: None)
    assert found.paths == {name: assets / name for name in module.ALL_BINARIES}


def _no_build(*_args: object) -> None:
    raise AssertionError("nothing should be built when KUBEBUILDER_ASSETS has every binary")
