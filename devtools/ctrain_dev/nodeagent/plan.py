"""Pure translation of a pod's container spec into a process to run.

Nothing here touches the API or the filesystem: secrets, configMaps and volume
directories are resolved by the caller and passed in, so every rule is unit-testable.
"""

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
NONROOT_UID = 65532  # the uid a runAsNonRoot pod gets when it names none (no image to ask)

Pod = Mapping[str, Any]
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.\-]*)\)")


class PlanError(ValueError):
    """The container cannot be started as specified; the message is the waiting reason's text."""


@dataclasses.dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclasses.dataclass(frozen=True)
class ContainerPlan:
    name: str
    argv: list[str]
    env: dict[str, str]
    working_dir: str | None
    mounts: list[Mount]
    uid: int
    gid: int
    groups: list[int]
    termination_path: str
    termination_source: str


@dataclasses.dataclass
class Resolved:
    """What the caller fetched for this pod: data by (namespace-local) object name."""

    secrets: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    config_maps: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)
    volume_dirs: dict[str, str] = dataclasses.field(default_factory=dict)


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, `$$` escapes `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REFERENCE.sub(replace, text)


def field_value(pod: Pod, path: str, pod_ip: str, host_ip: str) -> str:
    metadata = pod.get("metadata", {})
    spec = pod.get("spec", {})
    simple = {
        "metadata.name": metadata.get("name", ""),
        "metadata.namespace": metadata.get("namespace", ""),
        "metadata.uid": metadata.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path in simple:
        return str(simple[path])
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return str(metadata.get(match.group(1), {}).get(match.group(2), ""))
    raise PlanError(f"unsupported fieldRef {path!r}")


def _lookup(source: dict[str, dict[str, str]], kind: str, ref: Mapping[str, Any]) -> str | None:
    data = source.get(ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise PlanError(f'{kind} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise PlanError(f"couldn't find key {ref['key']} in {kind} {ref['name']}")
    return data[ref["key"]]


def build_env(
    pod: Pod,
    container: Mapping[str, Any],
    resolved: Resolved,
    *,
    pod_ip: str,
    host_ip: str,
    service_env: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment in Kubernetes' order: service env, envFrom, env."""
    env: dict[str, str] = dict(service_env)
    for source in container.get("envFrom", []) or []:
        prefix = source.get("prefix", "")
        for kind, store in (
            ("configMapRef", resolved.config_maps),
            ("secretRef", resolved.secrets),
        ):
            ref = source.get(kind)
            if ref is None:
                continue
            data = store.get(ref["name"])
            if data is None:
                if ref.get("optional"):
                    continue
                raise PlanError(f'{kind[:-3]} "{ref["name"]}" not found')
            env.update({prefix + key: value for key, value in data.items()})
    for item in container.get("env", []) or []:
        name = item["name"]
        if "valueFrom" not in item:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        source = item["valueFrom"]
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, source["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "secretKeyRef" in source:
            value = _lookup(resolved.secrets, "secret", source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = _lookup(resolved.config_maps, "configmap", source["configMapKeyRef"])
        elif "resourceFieldRef" in source:
            value = "0"  # no cgroups here: limits are not enforced, so none are reported
        else:
            raise PlanError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", pod.get("metadata", {}).get("name", ""))
    return env


def _identity(pod: Pod, container: Mapping[str, Any]) -> tuple[int, int, list[int]]:
    pod_context = pod.get("spec", {}).get("securityContext", {}) or {}
    context = container.get("securityContext", {}) or {}

    def pick(key: str) -> Any:
        return context.get(key, pod_context.get(key))

    uid = pick("runAsUser")
    if uid is None:
        uid = NONROOT_UID if pick("runAsNonRoot") else 0
    if pick("runAsNonRoot") and uid == 0:
        raise PlanError("container has runAsNonRoot and image will run as root")
    gid = pick("runAsGroup")
    gid = uid if gid is None else gid
    groups = list(pod_context.get("supplementalGroups", []) or [])
    if pod_context.get("fsGroup") is not None:
        groups.append(pod_context["fsGroup"])
    return int(uid), int(gid), [int(group) for group in groups]


def plan_container(
    pod: Pod,
    container: Mapping[str, Any],
    resolved: Resolved,
    *,
    pod_ip: str,
    host_ip: str,
    service_env: Mapping[str, str],
    termination_source: str,
    path_prefix: str = "",
) -> ContainerPlan:
    """Everything needed to start one container as a process."""
    command = list(container.get("command", []) or [])
    if not command:
        raise PlanError(
            "the sandbox node agent ignores images, so a container needs an explicit `command`"
        )
    env = build_env(
        pod, container, resolved, pod_ip=pod_ip, host_ip=host_ip, service_env=service_env
    )
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    argv = [expand(part, env) for part in command + list(container.get("args", []) or [])]
    mounts = []
    for mount in container.get("volumeMounts", []) or []:
        source = resolved.volume_dirs.get(mount["name"])
        if source is None:
            raise PlanError(f'volume "{mount["name"]}" is not defined in the pod')
        if mount.get("subPath"):
            source = f"{source}/{mount['subPath']}"
        mounts.append(Mount(source, mount["mountPath"], bool(mount.get("readOnly"))))
    uid, gid, groups = _identity(pod, container)
    return ContainerPlan(
        name=container["name"],
        argv=argv,
        env=env,
        working_dir=container.get("workingDir") or None,
        mounts=mounts,
        uid=uid,
        gid=gid,
        groups=groups,
        termination_path=container.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH,
        termination_source=termination_source,
    )


def service_environment(api_host: str, api_port: int) -> dict[str, str]:
    """The in-cluster variables pointing at the real apiserver (no Service network here)."""
    return {
        "KUBERNETES_SERVICE_HOST": api_host,
        "KUBERNETES_SERVICE_PORT": str(api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(api_port),
        "KUBERNETES_PORT": f"tcp://{api_host}:{api_port}",
    }
