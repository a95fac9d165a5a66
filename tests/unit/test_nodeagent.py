"""The node agent's pure parts: pod spec -> process plan, probe thresholds, pod phase."""

import pytest

from ctrain_dev.nodeagent import plan
from ctrain_dev.nodeagent.probes import ProbeState
from ctrain_dev.nodeagent.status import Conditions, ContainerState, pod_phase, pod_status

pytestmark = pytest.mark.unit

POD = {
    "metadata": {"name": "web-1", "namespace": "ns", "uid": "u-1", "labels": {"app": "web"}},
    "spec": {"nodeName": "node", "serviceAccountName": "sa"},
}


def make_plan(
    container: dict, resolved: plan.Resolved | None = None, **kwargs
) -> plan.ContainerPlan:
    return plan.plan_container(
        POD,
        container,
        resolved or plan.Resolved(),
        pod_ip="127.9.0.2",
        host_ip="127.0.0.1",
        service_env=plan.service_environment("127.0.0.1", 6443),
        termination_source="/state/term",
        **kwargs,
    )


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("$(A)-$(B)", {"A": "1", "B": "2"}, "1-2"),
        ("$(MISSING)", {}, "$(MISSING)"),
        ("$$(A)", {"A": "1"}, "$(A)"),
        ("cost $$5", {}, "cost $5"),
        ("no refs", {"A": "1"}, "no refs"),
    ],
)
def test_expand_follows_kubernetes_rules(text, env, expected):
    assert plan.expand(text, env) == expected


def test_env_order_sources_and_expansion():
    resolved = plan.Resolved(
        secrets={"creds": {"password": "pw"}}, config_maps={"cfg": {"MODE": "fast", "X": "cm"}}
    )
    container = {
        "name": "c",
        "command": ["serve", "--bind", "$(POD_IP)"],
        "args": ["--mode=$(MODE)"],
        "envFrom": [{"configMapRef": {"name": "cfg"}}],
        "env": [
            {"name": "X", "value": "explicit"},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "URL", "value": "http://$(POD_IP):8080"},
        ],
    }
    result = make_plan(container, resolved, path_prefix="/venv/bin")
    assert result.argv == ["serve", "--bind", "127.9.0.2", "--mode=fast"]
    env = result.env
    assert env["X"] == "explicit"  # env wins over envFrom
    assert (env["NAME"], env["APP"], env["PW"]) == ("web-1", "web", "pw")
    assert env["URL"] == "http://127.9.0.2:8080"
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["PATH"].startswith("/venv/bin:")


def test_missing_secret_is_a_plan_error_unless_optional():
    container = {
        "name": "c",
        "command": ["x"],
        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k"}}}],
    }
    with pytest.raises(plan.PlanError, match='secret "nope" not found'):
        make_plan(container)
    container["env"][0]["valueFrom"]["secretKeyRef"]["optional"] = True
    assert "PW" not in make_plan(container).env


def test_container_without_command_is_refused_with_a_reason():
    with pytest.raises(plan.PlanError, match="needs an explicit `command`"):
        make_plan({"name": "c", "image": "nginx"})


def test_mounts_and_termination_path():
    resolved = plan.Resolved(volume_dirs={"data": "/state/vol/data"})
    container = {
        "name": "c",
        "command": ["x"],
        "terminationMessagePath": "/tmp/done",
        "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": True, "subPath": "a"}],
    }
    result = make_plan(container, resolved)
    assert result.mounts == [plan.Mount("/state/vol/data/a", "/data", True)]
    assert result.termination_path == "/tmp/done"
    with pytest.raises(plan.PlanError, match='volume "other"'):
        make_plan(
            {"name": "c", "command": ["x"], "volumeMounts": [{"name": "other", "mountPath": "/o"}]}
        )


@pytest.mark.parametrize(
    ("pod_context", "container_context", "expected"),
    [
        ({}, {}, (0, 0)),
        ({"runAsUser": 1000}, {}, (1000, 1000)),
        ({"runAsUser": 1000}, {"runAsUser": 2000, "runAsGroup": 3}, (2000, 3)),
        ({"runAsNonRoot": True}, {}, (plan.NONROOT_UID, plan.NONROOT_UID)),
    ],
)
def test_identity_from_security_contexts(pod_context, container_context, expected):
    pod = {**POD, "spec": {**POD["spec"], "securityContext": pod_context}}
    result = plan.plan_container(
        pod,
        {"name": "c", "command": ["x"], "securityContext": container_context},
        plan.Resolved(),
        pod_ip="",
        host_ip="",
        service_env={},
        termination_source="/t",
    )
    assert (result.uid, result.gid) == expected


def test_run_as_non_root_with_uid_zero_is_refused():
    with pytest.raises(plan.PlanError, match="runAsNonRoot"):
        make_plan(
            {
                "name": "c",
                "command": ["x"],
                "securityContext": {"runAsNonRoot": True, "runAsUser": 0},
            }
        )


def test_probe_thresholds_and_timing():
    probe = ProbeState(
        {
            "initialDelaySeconds": 5,
            "periodSeconds": 2,
            "failureThreshold": 2,
            "successThreshold": 2,
        },
        started_at=100.0,
        initial=False,
    )
    assert not probe.due(104.9)
    assert probe.due(105.0)
    assert probe.record(True, 105.0) is False  # one success is not enough
    assert not probe.due(106.0)
    assert probe.record(True, 107.0) is True
    assert probe.record(False, 109.0) is True  # one failure is tolerated
    assert probe.record(False, 111.0) is False


def running(name="c"):
    return ContainerState(name, "img", state="running", started_at="t", started=True)


def terminated(code, name="c"):
    return ContainerState(name, "img", state="terminated", exit_code=code)


@pytest.mark.parametrize(
    ("policy", "init", "main", "phase"),
    [
        ("Always", [], [ContainerState("c", "img")], "Pending"),
        ("Always", [running("i")], [ContainerState("c", "img")], "Pending"),
        ("Never", [terminated(1, "i")], [ContainerState("c", "img")], "Failed"),
        ("OnFailure", [terminated(1, "i")], [ContainerState("c", "img")], "Pending"),
        ("Always", [terminated(0, "i")], [running()], "Running"),
        ("Never", [], [terminated(0)], "Succeeded"),
        ("Never", [], [terminated(0), terminated(2, "d")], "Failed"),
        ("OnFailure", [], [terminated(2)], "Running"),
        ("Always", [], [terminated(0)], "Running"),
        ("Never", [], [running(), terminated(0, "d")], "Running"),
    ],
)
def test_pod_phase(policy, init, main, phase):
    assert pod_phase(policy, init, main) == phase


def test_pod_status_conditions_and_ready():
    ready = running()
    ready.ready = True
    status = pod_status(
        restart_policy="Always",
        init=[],
        main=[ready],
        conditions=Conditions(),
        sandbox_ready=True,
        pod_ip="127.9.0.2",
        host_ip="127.0.0.1",
        start_time="t0",
    )
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    assert status["podIP"] == "127.9.0.2"
    assert status["containerStatuses"][0]["state"] == {"running": {"startedAt": "t"}}


def test_condition_transition_time_is_stable():
    conditions = Conditions()
    conditions.set("Ready", True)
    first = conditions.to_api()
    conditions.set("Ready", True)
    assert conditions.to_api() == first
