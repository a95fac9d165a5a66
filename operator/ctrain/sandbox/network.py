"""The sandbox's pod network: a bridge on the host and a network namespace per pod.

Each pod gets its own network namespace with a veth pair into the sandbox bridge and an
address from the sandbox's /16 (`10.N.0.0/16`, the host side is `10.N.0.1`), so several
replicas can listen on the same port, the EndpointSlice controller accepts the addresses
(loopback ones are invalid there), and traffic never leaves this machine: nothing routes
the subnet anywhere but the bridge. The control plane and S3 listen on the bridge address,
which pods reach as their default gateway. Needs root (as the mount namespaces do).
"""

import subprocess


class NetworkError(RuntimeError):
    """An `ip` command failed; the message holds its stderr."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def bridge_name(network: int) -> str:
    return f"ctrain{network}"


def host_ip(network: int) -> str:
    return f"10.{network}.0.1"


def link_exists(name: str) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


def create_bridge(network: int) -> None:
    """Create (or keep) the sandbox bridge with the host address."""
    name = bridge_name(network)
    if not link_exists(name):
        _ip("link", "add", name, "type", "bridge")
        _ip("addr", "add", f"{host_ip(network)}/16", "dev", name)
    _ip("link", "set", name, "up")


def delete_bridge(network: int) -> None:
    if link_exists(bridge_name(network)):
        _ip("link", "del", bridge_name(network))


def namespaces(prefix: str) -> list[str]:
    listing = _ip("netns", "list").stdout.splitlines()
    return [line.split()[0] for line in listing if line.startswith(prefix)]


def create_pod_network(network: int, namespace: str, veth: str, address: str) -> None:
    """A namespace with loopback and eth0 (`address`/16) bridged to the host, default via host."""
    delete_pod_network(namespace)
    _ip("netns", "add", namespace)
    if link_exists(veth):
        _ip("link", "del", veth)
    _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    _ip("link", "set", veth, "master", bridge_name(network), "up")
    _ip("-n", namespace, "addr", "add", f"{address}/16", "dev", "eth0")
    _ip("-n", namespace, "link", "set", "lo", "up")
    _ip("-n", namespace, "link", "set", "eth0", "up")
    _ip("-n", namespace, "route", "add", "default", "via", host_ip(network))


def delete_pod_network(namespace: str) -> None:
    """Remove a pod's namespace (its veth pair goes with it); a no-op if it is gone."""
    if namespace in namespaces(namespace):
        _ip("netns", "del", namespace)


def netns_path(namespace: str) -> str:
    return f"/run/netns/{namespace}"
