"""The container tooling's pure parts: engine flags, mirrors, wheel index, build commands."""

import ipaddress
import urllib.request
from pathlib import Path

import pytest
import yaml

from ctrain_dev import gobuild
from ctrain_dev.containers import baseimage, engine, image, nodeimage, wheels

pytestmark = pytest.mark.unit


def test_the_project_engine_leaves_the_host_firewall_and_forwarding_alone():
    argv = engine.dockerd_argv("/usr/sbin/dockerd", Path("/data"), Path("/run/x"))
    flags = dict(arg.split("=", 1) for arg in argv[1:])
    assert flags["--iptables"] == "false"
    assert flags["--ip-masq"] == "false"
    assert flags["--ip-forward"] == "false"
    # Its own state everywhere: never a system Docker's socket, pid file or data.
    assert flags["--host"] == "unix:///run/x/docker.sock"
    assert flags["--pidfile"] == "/run/x/dockerd.pid"
    assert flags["--exec-root"] == "/run/x/exec"
    assert flags["--data-root"] == "/data"


def test_the_engine_networks_never_overlap_a_sandbox_pod_network():
    pool = dict(part.split("=") for part in engine.ADDRESS_POOL.split(","))
    engine_networks = [
        ipaddress.ip_network(engine.BRIDGE_IP, strict=False),
        ipaddress.ip_network(pool["base"]),
    ]
    sandbox_networks = [ipaddress.ip_network(f"10.{n}.0.0/16") for n in range(16, 251)]
    for ours in engine_networks:
        assert not any(ours.overlaps(theirs) for theirs in sandbox_networks), ours


def test_mirrors_come_from_deb822_and_one_line_sources():
    deb822 = """Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""
    one_line = "deb [arch=amd64] http://other.example/debian bookworm main\n"
    entries = baseimage.parse_sources(deb822 + "\n" + one_line)
    assert ("http://mirror.example/debian", ["bookworm", "bookworm-updates"]) in entries
    assert ("http://mirror.example/debian-security", ["bookworm-security"]) in entries
    assert ("http://other.example/debian", ["bookworm"]) in entries


def test_sources_list_for_the_image_names_the_three_suites():
    mirrors = baseimage.Mirrors("http://m/debian", "http://m/debian-security")
    assert mirrors.sources_list().splitlines() == [
        "deb http://m/debian bookworm main",
        "deb http://m/debian bookworm-updates main",
        "deb http://m/debian-security bookworm-security main",
    ]


def test_wheel_names_map_to_index_projects():
    assert wheels.wheel_project("scikit_learn-1.9.1-cp311-cp311-manylinux.whl") == "scikit-learn"
    assert wheels.wheel_project("PyYAML-6.0.3-cp311-cp311-manylinux.whl") == "pyyaml"
    assert wheels.normalize("ruamel.yaml.clib") == "ruamel-yaml-clib"


def test_the_wheel_index_serves_pip_pages_with_hashes(tmp_path: Path):
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "click-8.5.1-py3-none-any.whl").write_bytes(b"wheel bytes")
    wheels.write_index(tmp_path)
    with wheels.serve(tmp_path) as url:
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{url}click/") as page:
            text = page.read().decode()
        href = text.split('href="', 1)[1].split('"', 1)[0]
        with urllib.request.urlopen(f"{url}click/{href.split('#')[0]}") as wheel:
            assert wheel.read() == b"wheel bytes"
    assert "#sha256=" in href


def test_the_index_port_is_the_same_for_the_same_wheels():
    # A stable URL keeps Docker's build cache valid across builds.
    house = Path("/cache/wheels/cpython-311-linux-x86_64-abc")
    assert wheels.preferred_port(house) == wheels.preferred_port(house)
    assert 20000 <= wheels.preferred_port(house) < 50000


def test_requirements_are_the_pins_and_the_build_backend():
    root = Path(__file__).parents[2]
    requirements = wheels.project_requirements(root / "pyproject.toml")
    assert any(req.startswith("setuptools==") for req in requirements)
    assert all("==" in req for req in requirements)


def test_build_with_host_wheels_shares_the_host_network():
    argv = image.docker_build_argv(Path("/src"), "ctrain:dev", "base:1", "http://127.0.0.1:1/")
    assert "--network=host" in argv
    assert "PACKAGE_INDEX=http://127.0.0.1:1/" in argv
    assert argv[-1] == "/src"
    plain = image.docker_build_argv(Path("/src"), "ctrain:dev", "python:3.11-slim-bookworm", None)
    assert "--network=host" not in plain
    assert not any(arg.startswith("PACKAGE_INDEX") for arg in plain)


@pytest.mark.parametrize(
    ("tag", "derived"),
    [("ctrain:dev", "ctrain-s3:dev"), ("ghcr.io/x/ctrain:1.0", "ghcr.io/x/ctrain-s3:1.0"),
     ("localhost:5000/ctrain", "localhost:5000/ctrain-s3")],
)  # fmt: skip
def test_s3_image_tag(tag: str, derived: str):
    assert image.s3_tag(tag) == derived


def test_components_are_named_by_their_repository():
    assert nodeimage.component("reg.example/kube-apiserver:v1.34.4") == "kube-apiserver"
    assert nodeimage.component("reg.example/coredns/coredns:v1.12.1") == "coredns"
    assert nodeimage.component("reg.example/pause:3.10.1") == "pause"


def test_the_node_network_manifest_is_least_privilege():
    documents = list(yaml.safe_load_all(nodeimage.routes_manifest("ctrain-kind/routes:x")))
    daemonset = next(doc for doc in documents if doc["kind"] == "DaemonSet")
    container = daemonset["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ctrain-kind/routes:x"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["NET_ADMIN"]}
    assert not container["securityContext"].get("privileged")
    role = next(doc for doc in documents if doc["kind"] == "ClusterRole")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]


def test_build_progress_is_a_share_of_the_packages():
    assert gobuild.progress_line("kube", 150, 600) == "  kube: 150 of 600 packages compiled (25%)"
    assert gobuild.progress_line("kube", 700, 600).endswith("(100%)")
    assert gobuild.progress_line("kube", 12, None) == "  kube: 12 packages compiled"
