"""One worker thread per pod: set up, start and supervise its containers, report status.

The worker is level-triggered: every tick it looks at its processes and the latest pod
object, acts (start, restart, probe, stop) and patches the pod status when it changed.
"""

import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ctrain_dev import host
from ctrain_dev.nodeagent import plan as planning
from ctrain_dev.nodeagent import probes, volumes
from ctrain_dev.nodeagent.status import Conditions, ContainerState, now_rfc3339, pod_status

log = logging.getLogger("ctrain_dev.nodeagent")
TICK_SECONDS = 0.2
MAX_MESSAGE_BYTES = 4096
BACKOFF_START, BACKOFF_CAP = 2.0, 60.0


@dataclasses.dataclass
class Settings:
    """What every worker shares: where it writes and how pods reach the apiserver."""

    state_dir: Path
    host_ip: str
    api_host: str
    api_port: int
    path_prefix: str  # the ctrain environment's bin dir: pods run `ctrain` without an image
    pod_network: int = 0  # N of 10.N.0.0/16
    preserve: list[str] = dataclasses.field(default_factory=list)  # host dirs pods must see
    run_as_pod_user: bool = False  # switch to the securityContext's uid/gid (see shim)


@dataclasses.dataclass
class Container:
    spec: dict[str, Any]
    status: ContainerState
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    plan: planning.ContainerPlan | None = None
    next_start: float = 0.0
    readiness: probes.ProbeState | None = None
    liveness: probes.ProbeState | None = None
    startup: probes.ProbeState | None = None


class PodWorker(threading.Thread):
    def __init__(
        self,
        pod: dict[str, Any],
        pod_ip: str,
        api: client.CoreV1Api,
        settings: Settings,
        on_exit: Callable[[str], None],
    ) -> None:
        uid = pod["metadata"]["uid"]
        super().__init__(name=f"pod-{pod['metadata']['name']}", daemon=True)
        self.pod, self.pod_ip, self.api, self.settings = pod, pod_ip, api, settings
        self.uid, self.on_exit = uid, on_exit
        self.directory = settings.state_dir / "pods" / uid
        self.lock = threading.Lock()
        self.conditions = Conditions()
        self.start_time = now_rfc3339()
        self.sandbox_ready = False
        self.resolved: planning.Resolved | None = None
        self.last_status: dict[str, Any] | None = None
        self.stopped = threading.Event()
        self.netns = f"ctrain-{settings.pod_network}-{uid[:13]}"
        self.network_ready = False
        spec = pod["spec"]
        self.init = [self._container(c, init=True) for c in spec.get("initContainers", []) or []]
        self.main = [self._container(c, init=False) for c in spec.get("containers", [])]

    def _container(self, spec: dict[str, Any], *, init: bool) -> Container:
        directory = self.directory / "containers" / spec["name"]
        directory.mkdir(parents=True, exist_ok=True)
        return Container(spec, ContainerState(spec["name"], spec.get("image", ""), init), directory)

    def update(self, pod: dict[str, Any]) -> None:
        with self.lock:
            self.pod = pod

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    def run(self) -> None:
        try:
            self._loop()
        except Exception:
            log.exception("pod %s: worker failed", self.name)
            self._kill_all(0)
            self._teardown()
        finally:
            self.on_exit(self.uid)

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        (self.directory / "pod.json").write_text(
            json.dumps(
                {
                    "namespace": self.pod["metadata"]["namespace"],
                    "name": self.pod["metadata"]["name"],
                    "uid": self.uid,
                }
            )
        )
        while not self.stopped.is_set():
            with self.lock:
                pod = self.pod
            if pod["metadata"].get("deletionTimestamp"):
                self._terminate(pod)
                return
            if not self.sandbox_ready:
                self._setup(pod)
            if self.sandbox_ready:
                self._supervise(pod)
            self._publish(pod)
            finished = (self.last_status or {}).get("phase") in ("Succeeded", "Failed")
            if finished and self.network_ready:
                self._teardown()  # as a kubelet removes the sandbox of a finished pod
            time.sleep(TICK_SECONDS)

    def _setup(self, pod: dict[str, Any]) -> None:
        if not self.network_ready:
            octets = self.pod_ip.split(".")
            veth = f"ct{self.settings.pod_network}-{int(octets[2]) * 250 + int(octets[3])}"
            host.create_pod_network(self.settings.pod_network, self.netns, veth, self.pod_ip)
            self.network_ready = True
        fetcher = volumes.Fetcher(self.api, pod["metadata"]["namespace"])
        try:
            directories = volumes.materialise(
                pod, self.directory, fetcher, pod_ip=self.pod_ip, host_ip=self.settings.host_ip
            )
            self.resolved = volumes.resolve_env_sources(pod, fetcher)
            self.resolved.volume_dirs = directories
        except (planning.PlanError, ApiException) as error:
            message = error.reason if isinstance(error, ApiException) else str(error)
            for container in self.init + self.main:
                container.status.reason, container.status.message = "ContainerCreating", message
            time.sleep(1)
            return
        self.sandbox_ready = True

    def _supervise(self, pod: dict[str, Any]) -> None:
        policy = pod["spec"].get("restartPolicy", "Always")
        for container in self.init:
            state = container.status
            if state.state == "terminated" and state.exit_code == 0:
                continue
            self._step(container, "Never" if policy == "Never" else "OnFailure")
            return  # init containers run one at a time, in order
        for container in self.main:
            self._step(container, policy)

    def _step(self, container: Container, policy: str) -> None:
        state = container.status
        now = time.monotonic()
        if container.process is None:
            if state.state == "terminated":
                failed = state.exit_code != 0
                if policy == "Never" or (policy == "OnFailure" and not failed):
                    return
                backoff = min(BACKOFF_START * 2**state.restart_count, BACKOFF_CAP)
                container.next_start = now + backoff
                state.last_terminated = state.terminated_record()
                state.restart_count += 1
                state.state, state.reason = "waiting", "CrashLoopBackOff"
                state.message = f"back-off {backoff:.0f}s restarting failed container"
            if now >= container.next_start:
                self._start(container)
            return
        code = container.process.poll()
        if code is not None:
            self._finished(container, code)
            return
        self._probe(container, now)

    def _start(self, container: Container) -> None:
        state = container.status
        assert self.resolved is not None
        termination = container.directory / "termination-log"
        termination.write_bytes(b"")
        termination.chmod(0o666)
        try:
            plan = planning.plan_container(
                self.pod,
                container.spec,
                self.resolved,
                pod_ip=self.pod_ip,
                host_ip=self.settings.host_ip,
                service_env=planning.service_environment(
                    self.settings.api_host, self.settings.api_port
                ),
                termination_source=str(termination),
                path_prefix=self.settings.path_prefix,
            )
        except planning.PlanError as error:
            state.state, state.reason, state.message = (
                "waiting",
                "CreateContainerConfigError",
                str(error),
            )
            container.next_start = time.monotonic() + 2
            return
        plan_file = container.directory / "plan.json"
        context = container.spec.get("securityContext") or {}
        body = dataclasses.asdict(plan) | {
            "no_new_privs": context.get("allowPrivilegeEscalation") is False,
            "apply_identity": self.settings.run_as_pod_user,
            "preserve": self.settings.preserve,
            "stash_dir": str(container.directory / "stash"),
        }
        plan_file.write_text(json.dumps(body))
        plan_file.chmod(0o600)
        log_file = container.directory / f"{state.restart_count}.log"
        with log_file.open("ab") as output:
            container.process = subprocess.Popen(
                [
                    "nsenter",
                    f"--net={host.netns_path(self.netns)}",
                    "--",
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "--",
                    sys.executable,
                    "-m",
                    "ctrain_dev.nodeagent.shim",
                    str(plan_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pid = container.process.pid
        record = host.Process(f"{self.name}/{state.name}", pid, host.start_time(pid), str(log_file))
        (container.directory / "process.json").write_text(json.dumps(dataclasses.asdict(record)))
        container.plan = plan
        state.state, state.reason, state.message = "running", "", ""
        state.started_at, state.finished_at, state.exit_code = now_rfc3339(), None, None
        state.ready = False
        state.started = "startupProbe" not in container.spec
        now = time.monotonic()
        for kind, initial in (("readiness", False), ("liveness", True), ("startup", False)):
            spec = container.spec.get(f"{kind}Probe")
            setattr(container, kind, probes.ProbeState(spec, now, initial) if spec else None)
        if container.readiness is None and not state.init:
            state.ready = True

    def _finished(self, container: Container, code: int) -> None:
        state = container.status
        container.process = None
        exit_code = code if code >= 0 else 128 - code  # killed by a signal: 128 + signal
        state.state, state.exit_code, state.finished_at = "terminated", exit_code, now_rfc3339()
        state.reason = "Completed" if exit_code == 0 else "Error"
        state.ready = False
        state.message = self._termination_message(container, exit_code)

    def _termination_message(self, container: Container, exit_code: int) -> str:
        message = (container.directory / "termination-log").read_bytes()[:MAX_MESSAGE_BYTES]
        policy = container.spec.get("terminationMessagePolicy", "File")
        if not message.strip() and exit_code != 0 and policy == "FallbackToLogsOnError":
            log_file = container.directory / f"{container.status.restart_count}.log"
            lines = log_file.read_bytes().splitlines()[-80:]
            message = b"\n".join(lines)[-2048:]
        return message.decode(errors="replace")

    def _probe(self, container: Container, now: float) -> None:
        state = container.status
        assert container.process is not None and container.plan is not None
        ports = {
            p["name"]: p["containerPort"]
            for p in container.spec.get("ports", []) or []
            if p.get("name")
        }
        prefix = ["nsenter", f"--target={container.process.pid}", "--mount", "--net"]
        if self.settings.run_as_pod_user:
            prefix += [f"--setuid={container.plan.uid}", f"--setgid={container.plan.gid}"]
        prefix.append("--")
        if container.startup is not None and not state.started:
            if container.startup.due(now):
                ok = probes.check(container.startup.spec, self.pod_ip, ports, prefix)
                if container.startup.record(ok, now):
                    state.started = True
                elif container.startup.failures >= int(
                    container.startup.spec.get("failureThreshold", 3)
                ):
                    self._kill(container, "startup probe failed")
            return
        if container.liveness is not None and container.liveness.due(now):
            alive = container.liveness.record(
                probes.check(container.liveness.spec, self.pod_ip, ports, prefix), now
            )
            if not alive:
                self._kill(container, "liveness probe failed")
                return
        if container.readiness is not None and container.readiness.due(now):
            state.ready = container.readiness.record(
                probes.check(container.readiness.spec, self.pod_ip, ports, prefix), now
            )

    def _kill(self, container: Container, why: str, grace: float = 30) -> None:
        log.info("pod %s container %s: %s; stopping it", self.name, container.status.name, why)
        process = container.process
        if process is None:
            return
        _signal_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        self._finished(container, process.returncode)

    def _kill_all(self, grace: float, pre_stop: bool = False) -> None:
        running = [c for c in self.init + self.main if c.process is not None]
        deadline = time.monotonic() + grace
        if pre_stop:
            self._pre_stop(running, deadline)
        for container in running:
            _signal_group(container.process.pid, signal.SIGTERM)  # type: ignore[union-attr]
        for container in running:
            assert container.process is not None
            try:
                container.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(container.process.pid, signal.SIGKILL)
                container.process.wait()
            self._finished(container, container.process.returncode)

    def _pre_stop(self, running: list[Container], deadline: float) -> None:
        """Run preStop hooks (sleep, exec, httpGet) within the grace period, as a kubelet does."""
        pause = 0.0
        for container in running:
            hook = (container.spec.get("lifecycle") or {}).get("preStop") or {}
            remaining = max(0.0, deadline - time.monotonic())
            if "sleep" in hook:
                pause = max(pause, float(hook["sleep"]["seconds"]))
            elif "exec" in hook or "httpGet" in hook:
                assert container.process is not None
                prefix = ["nsenter", f"--target={container.process.pid}", "--mount", "--net", "--"]
                action = {**hook, "timeoutSeconds": remaining}
                if not probes.check(action, self.pod_ip, {}, prefix):
                    log.info(
                        "pod %s container %s: preStop hook failed", self.name, container.status.name
                    )
        time.sleep(min(pause, max(0.0, deadline - time.monotonic())))

    def _terminate(self, pod: dict[str, Any]) -> None:
        grace = pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = pod["spec"].get("terminationGracePeriodSeconds", 30)
        self._kill_all(float(grace), pre_stop=True)
        self._publish(pod)
        self._teardown()
        metadata = pod["metadata"]
        try:
            self.api.delete_namespaced_pod(
                metadata["name"],
                metadata["namespace"],
                grace_period_seconds=0,
                body=client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)
                ),
            )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    def stop(self) -> None:
        """Agent shutdown: stop the containers (as a node going away would)."""
        self.stopped.set()
        self._kill_all(5)
        self._teardown()

    def _teardown(self) -> None:
        """Remove what the pod no longer needs: its secrets on disk and its network."""
        volumes.remove_secrets(self.directory)
        host.delete_pod_network(self.netns)
        self.network_ready = False

    def _publish(self, pod: dict[str, Any]) -> None:
        status = pod_status(
            restart_policy=pod["spec"].get("restartPolicy", "Always"),
            init=[c.status for c in self.init],
            main=[c.status for c in self.main],
            conditions=self.conditions,
            sandbox_ready=self.sandbox_ready,
            pod_ip=self.pod_ip if self.sandbox_ready else "",
            host_ip=self.settings.host_ip,
            start_time=self.start_time,
        )
        if status == self.last_status:
            return
        metadata = pod["metadata"]
        try:
            self.api.patch_namespaced_pod_status(
                metadata["name"], metadata["namespace"], {"status": status}
            )
        except ApiException as error:
            if error.status == 404:
                self.stopped.set()
                self._kill_all(0)
                self._teardown()
                return
            log.warning("pod %s: status update failed: %s", self.name, error.reason)
            return
        self.last_status = status


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        return
