"""Readiness, liveness and startup probes: the threshold logic and the three handlers.

`ProbeState` is pure (time is passed in), so its rules are unit-tested directly;
`check` performs one httpGet, tcpSocket or exec probe against a pod IP.
"""

import dataclasses
import http.client
import socket
import subprocess
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass
class ProbeState:
    """Counts consecutive results the way the kubelet does."""

    spec: Mapping[str, Any]
    started_at: float
    initial: bool  # the result before the first probe (readiness: False, liveness: True)
    result: bool = dataclasses.field(init=False)
    successes: int = 0
    failures: int = 0
    last_run: float | None = None

    def __post_init__(self) -> None:
        self.result = self.initial

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds", 1))

    def due(self, now: float) -> bool:
        if now < self.started_at + float(self.spec.get("initialDelaySeconds", 0)):
            return False
        return self.last_run is None or now - self.last_run >= self.period

    def record(self, ok: bool, now: float) -> bool:
        """Feed one probe outcome; return the (possibly new) overall result."""
        self.last_run = now
        if ok:
            self.successes += 1
            self.failures = 0
            if self.successes >= int(self.spec.get("successThreshold", 1)):
                self.result = True
        else:
            self.failures += 1
            self.successes = 0
            if self.failures >= int(self.spec.get("failureThreshold", 3)):
                self.result = False
        return self.result


def _port(value: Any, ports: Mapping[str, int]) -> int:
    if isinstance(value, int):
        return value
    if str(value).isdigit():
        return int(value)
    if value in ports:
        return ports[value]
    raise ValueError(f"probe names port {value!r}, which no container port declares")


def check(
    spec: Mapping[str, Any],
    pod_ip: str,
    ports: Mapping[str, int],
    exec_prefix: list[str],
) -> bool:
    """Run one probe; True on success. `exec_prefix` enters the container's namespace."""
    timeout = float(spec.get("timeoutSeconds", 1))
    try:
        if "httpGet" in spec:
            action = spec["httpGet"]
            host = action.get("host") or pod_ip
            connection = http.client.HTTPConnection(
                host, _port(action["port"], ports), timeout=timeout
            )
            try:
                headers = {h["name"]: h["value"] for h in action.get("httpHeaders", []) or []}
                connection.request("GET", action.get("path", "/"), headers=headers)
                status = connection.getresponse().status
            finally:
                connection.close()
            return 200 <= status < 400
        if "tcpSocket" in spec:
            action = spec["tcpSocket"]
            address = (action.get("host") or pod_ip, _port(action["port"], ports))
            with socket.create_connection(address, timeout=timeout):
                return True
        if "exec" in spec:
            command = list(spec["exec"].get("command", []))
            completed = subprocess.run(
                exec_prefix + command, capture_output=True, timeout=timeout, check=False
            )
            return completed.returncode == 0
    except (OSError, subprocess.TimeoutExpired, http.client.HTTPException):
        return False
    raise ValueError(f"unsupported probe handler: {sorted(spec)}")
