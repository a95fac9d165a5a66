"""Materialise a pod's volumes as directories, and fetch what its env refers to.

Each volume becomes `<pod dir>/volumes/<name>`; the shim bind-mounts it at the
container's mountPath. Secrets, configMaps and ServiceAccount tokens are read with the
node's own credentials, which the apiserver's Node authorizer limits to this node's pods.
"""

import base64
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ctrain_dev.nodeagent.plan import PlanError, Resolved, field_value

Pod = Mapping[str, Any]


class Fetcher:
    """Reads secrets and configMaps once per pod setup, remembering misses as None."""

    def __init__(self, api: client.CoreV1Api, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.secrets: dict[str, dict[str, bytes] | None] = {}
        self.config_maps: dict[str, dict[str, bytes] | None] = {}

    def secret(self, name: str) -> dict[str, bytes] | None:
        return self._read(self.secrets, self.api.read_namespaced_secret, name)

    def config_map(self, name: str) -> dict[str, bytes] | None:
        return self._read(self.config_maps, self.api.read_namespaced_config_map, name)

    def _read(
        self, cache: dict[str, dict[str, bytes] | None], read: Any, name: str
    ) -> dict[str, bytes] | None:
        """The object's keys as bytes (Secret `data` and ConfigMap `binaryData` are base64)."""
        if name not in cache:
            try:
                raw = read(name, self.namespace)
            except ApiException as error:
                if error.status != 404:
                    raise
                cache[name] = None
                return None
            if isinstance(raw, client.V1ConfigMap):
                data = {k: v.encode() for k, v in (raw.data or {}).items()}
                data.update({k: base64.b64decode(v) for k, v in (raw.binary_data or {}).items()})
            else:
                data = {k: base64.b64decode(v) for k, v in (raw.data or {}).items()}
            cache[name] = data
        return cache[name]

    def token(self, pod: Pod, audience: str | None, seconds: int) -> bytes:
        metadata = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        request = client.AuthenticationV1TokenRequest(
            spec=client.V1TokenRequestSpec(
                # No audience in the pod spec means the apiserver's own (its default).
                audiences=[audience] if audience else None,
                expiration_seconds=seconds,
                bound_object_ref=client.V1BoundObjectReference(
                    api_version="v1", kind="Pod", name=metadata["name"], uid=metadata["uid"]
                ),
            )
        )
        response = self.api.create_namespaced_service_account_token(
            account, metadata["namespace"], request
        )
        return str(response.status.token).encode()


def _write(directory: Path, relative: str, content: bytes, mode: int) -> None:
    target = directory / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    target.chmod(mode)


def _project_keys(
    directory: Path,
    kind: str,
    name: str,
    data: dict[str, bytes] | None,
    source: Mapping[str, Any],
    default_mode: int,
) -> None:
    if data is None:
        if source.get("optional"):
            return
        raise PlanError(f'{kind} "{name}" not found')
    items = source.get("items")
    if not items:
        for key, value in data.items():
            _write(directory, key, value, default_mode)
        return
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise PlanError(f'{kind} "{name}": key {item["key"]} not found')
        _write(directory, item["path"], data[item["key"]], item.get("mode", default_mode))


def _downward(
    directory: Path,
    pod: Pod,
    items: list[Mapping[str, Any]],
    pod_ip: str,
    host_ip: str,
    default_mode: int,
) -> None:
    for item in items:
        if "fieldRef" not in item:
            raise PlanError(f"downwardAPI item {item['path']}: only fieldRef is supported here")
        value = field_value(pod, item["fieldRef"]["fieldPath"], pod_ip, host_ip)
        _write(directory, item["path"], value.encode(), item.get("mode", default_mode))


def materialise(
    pod: Pod, pod_dir: Path, fetcher: Fetcher, *, pod_ip: str, host_ip: str
) -> dict[str, str]:
    """Write every volume of `pod`; return volume name -> host directory."""
    directories: dict[str, str] = {}
    for volume in pod["spec"].get("volumes", []) or []:
        name = volume["name"]
        directory = pod_dir / "volumes" / name
        directory.mkdir(parents=True, exist_ok=True)
        if "emptyDir" in volume:
            directory.chmod(0o777)
        elif "hostPath" in volume:
            directories[name] = volume["hostPath"]["path"]
            continue
        elif "secret" in volume:
            source = volume["secret"]
            mode = source.get("defaultMode", 0o644)
            _project_keys(
                directory,
                "secret",
                source["secretName"],
                fetcher.secret(source["secretName"]),
                source,
                mode,
            )
        elif "configMap" in volume:
            source = volume["configMap"]
            mode = source.get("defaultMode", 0o644)
            _project_keys(
                directory,
                "configmap",
                source["name"],
                fetcher.config_map(source["name"]),
                source,
                mode,
            )
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            _downward(
                directory,
                pod,
                source.get("items", []),
                pod_ip,
                host_ip,
                source.get("defaultMode", 0o644),
            )
        elif "projected" in volume:
            _projected(directory, pod, volume["projected"], fetcher, pod_ip, host_ip)
        else:
            kinds = sorted(set(volume) - {"name"})
            raise PlanError(f"volume {name}: {kinds} volumes are not supported by the sandbox")
        directories[name] = str(directory)
    return directories


def _projected(
    directory: Path,
    pod: Pod,
    projected: Mapping[str, Any],
    fetcher: Fetcher,
    pod_ip: str,
    host_ip: str,
) -> None:
    mode = projected.get("defaultMode", 0o644)
    for source in projected.get("sources", []) or []:
        if "serviceAccountToken" in source:
            token = source["serviceAccountToken"]
            seconds = int(token.get("expirationSeconds", 3607))
            _write(
                directory, token["path"], fetcher.token(pod, token.get("audience"), seconds), mode
            )
        elif "configMap" in source:
            ref = source["configMap"]
            _project_keys(
                directory, "configmap", ref["name"], fetcher.config_map(ref["name"]), ref, mode
            )
        elif "secret" in source:
            ref = source["secret"]
            _project_keys(directory, "secret", ref["name"], fetcher.secret(ref["name"]), ref, mode)
        elif "downwardAPI" in source:
            _downward(directory, pod, source["downwardAPI"].get("items", []), pod_ip, host_ip, mode)
        else:
            raise PlanError(f"projected source {sorted(source)} is not supported by the sandbox")


def resolve_env_sources(pod: Pod, fetcher: Fetcher) -> Resolved:
    """Fetch every secret and configMap that some container's env or envFrom names."""
    resolved = Resolved()
    containers = list(pod["spec"].get("initContainers", []) or [])
    containers += list(pod["spec"].get("containers", []) or [])
    for container in containers:
        refs: list[tuple[str, str]] = []
        for source in container.get("envFrom", []) or []:
            if "secretRef" in source:
                refs.append(("secret", source["secretRef"]["name"]))
            if "configMapRef" in source:
                refs.append(("configmap", source["configMapRef"]["name"]))
        for item in container.get("env", []) or []:
            value_from = item.get("valueFrom") or {}
            if "secretKeyRef" in value_from:
                refs.append(("secret", value_from["secretKeyRef"]["name"]))
            if "configMapKeyRef" in value_from:
                refs.append(("configmap", value_from["configMapKeyRef"]["name"]))
        for kind, name in refs:
            read = fetcher.secret if kind == "secret" else fetcher.config_map
            store = resolved.secrets if kind == "secret" else resolved.config_maps
            data = read(name)
            if data is not None:
                store[name] = {k: v.decode(errors="replace") for k, v in data.items()}
    return resolved


def remove_secrets(pod_dir: Path) -> None:
    """Drop the volume contents of a finished pod (tokens and secrets must not linger)."""
    volumes = pod_dir / "volumes"
    if not volumes.exists():
        return
    for root, _dirs, files in os.walk(volumes):
        for file_name in files:
            Path(root, file_name).unlink()
