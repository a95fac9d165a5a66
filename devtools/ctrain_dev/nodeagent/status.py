"""Pure computation of a pod's status from the state of its containers.

Phase and conditions follow the kubelet's rules (see `pod_phase`), so the Job,
Deployment, ReplicaSet and EndpointSlice controllers react exactly as in a cluster.
"""

import dataclasses
import datetime
from typing import Any


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class ContainerState:
    """What the agent knows about one container, in the API's vocabulary."""

    name: str
    image: str
    init: bool = False
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    restart_count: int = 0
    last_terminated: dict[str, Any] | None = None
    ready: bool = False
    started: bool = False

    def to_api(self) -> dict[str, Any]:
        if self.state == "running":
            state: dict[str, Any] = {"running": {"startedAt": self.started_at}}
        elif self.state == "terminated":
            terminated = {
                "exitCode": self.exit_code,
                "reason": self.reason,
                "startedAt": self.started_at,
                "finishedAt": self.finished_at,
                "containerID": f"ctrain://{self.name}-{self.restart_count}",
            }
            if self.message:
                terminated["message"] = self.message
            state = {"terminated": terminated}
        else:
            waiting = {"reason": self.reason}
            if self.message:
                waiting["message"] = self.message
            state = {"waiting": waiting}
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.state != "waiting" or self.restart_count:
            status["containerID"] = f"ctrain://{self.name}-{self.restart_count}"
        return status

    def terminated_record(self) -> dict[str, Any]:
        terminated: dict[str, Any] = self.to_api()["state"]["terminated"]
        return terminated


def pod_phase(restart_policy: str, init: list[ContainerState], main: list[ContainerState]) -> str:
    """The kubelet's phase rules, for containers that are waiting, running or terminated."""
    for container in init:
        failed = container.state == "terminated" and container.exit_code != 0
        if failed and restart_policy == "Never":
            return "Failed"
        if not (container.state == "terminated" and container.exit_code == 0):
            return "Pending"
    never_started = [c for c in main if c.state == "waiting" and not c.restart_count]
    if never_started:
        return "Pending"
    if any(c.state == "running" for c in main):
        return "Running"
    restarting = [c for c in main if c.state == "waiting"]
    if restarting or restart_policy == "Always":
        return "Running"
    crashed = [c for c in main if c.state == "terminated" and c.exit_code != 0]
    if crashed:
        return "Running" if restart_policy == "OnFailure" else "Failed"
    return "Succeeded"


class Conditions:
    """Pod conditions with lastTransitionTime kept stable while the status stays the same."""

    def __init__(self) -> None:
        self.current: dict[str, tuple[bool, str]] = {}

    def set(self, kind: str, value: bool) -> None:
        previous = self.current.get(kind)
        if previous is None or previous[0] != value:
            self.current[kind] = (value, now_rfc3339())

    def to_api(self) -> list[dict[str, Any]]:
        return [
            {"type": kind, "status": "True" if value else "False", "lastTransitionTime": when}
            for kind, (value, when) in self.current.items()
        ]


def pod_status(
    *,
    restart_policy: str,
    init: list[ContainerState],
    main: list[ContainerState],
    conditions: Conditions,
    sandbox_ready: bool,
    pod_ip: str,
    host_ip: str,
    start_time: str,
) -> dict[str, Any]:
    phase = pod_phase(restart_policy, init, main)
    initialized = all(c.state == "terminated" and c.exit_code == 0 for c in init)
    containers_ready = bool(main) and all(c.ready for c in main)
    if phase in ("Succeeded", "Failed"):
        containers_ready = False
    conditions.set("PodReadyToStartContainers", sandbox_ready)
    conditions.set("Initialized", initialized)
    conditions.set("ContainersReady", containers_ready)
    conditions.set("Ready", containers_ready)
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": conditions.to_api(),
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "initContainerStatuses": [c.to_api() for c in init],
        "containerStatuses": [c.to_api() for c in main],
    }
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return status
