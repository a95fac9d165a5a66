"""Small helpers the integration tests share: waiting on conditions, restricted pod specs."""

import re
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kubernetes import client

from ctrain_dev.sandbox.sandbox import State

T = TypeVar("T")

RESTRICTED_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def wait_for(
    check: Callable[[], T | None], timeout: float = 120, interval: float = 0.5, what: str = ""
) -> T:
    """Poll `check` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what or check}: {last!r}")


# What the sandbox's node runs: the image of this checkout (`make image`), which has a shell
# and Python; the node imports it at `ctrain dev up` and pulls nothing.
SANDBOX_IMAGE = "ctrain:dev"


def container(name: str, command: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": SANDBOX_IMAGE,
        "command": command,
        "securityContext": RESTRICTED_CONTAINER_SECURITY,
        **extra,
    }


def iris_trainingjob(name: str, model: str, **spec: object) -> dict[str, Any]:
    """A TrainingJob of a logistic regression on the built-in iris data; `spec` adds fields."""
    return {
        "apiVersion": "ctrain.dev/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": {"uri": "builtin://iris"},
            "estimator": {
                "type": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 500},
            },
            **spec,
        },
    }


def condition(obj: Any, kind: str) -> Any:
    for item in (obj.status.conditions or []) if obj.status else []:
        if item.type == kind:
            return item
    return None


def kubectl(
    sandbox: State, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    binary = next(Path(d) / "kubectl" for d in sandbox.bin_dirs if (Path(d) / "kubectl").exists())
    return subprocess.run(
        [str(binary), f"--kubeconfig={sandbox.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=check,
    )


def apply(sandbox: State, namespace: str, manifest: dict[str, Any] | str) -> None:
    text = manifest if isinstance(manifest, str) else yaml.safe_dump(manifest)
    kubectl(sandbox, "apply", "-n", namespace, "-f", "-", stdin=text)


def get(custom: client.CustomObjectsApi, plural: str, namespace: str, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object("ctrain.dev", "v1alpha1", namespace, plural, name)  # type: ignore[no-any-return]


def wait_phase(
    custom: client.CustomObjectsApi,
    plural: str,
    namespace: str,
    name: str,
    phases: tuple[str, ...],
    timeout: float = 240,
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body = get(custom, plural, namespace, name)
        return body if (body.get("status") or {}).get("phase") in phases else None

    return wait_for(done, timeout=timeout, interval=1, what=f"{plural}/{name} in {phases}")


def events_for(core: client.CoreV1Api, namespace: str, name: str) -> list[tuple[str, str]]:
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
    return [
        (e.reason, e.message)
        for e in sorted(events.items, key=lambda e: e.metadata.creation_timestamp)
    ]


def events_until(
    core: client.CoreV1Api,
    namespace: str,
    name: str,
    done: Callable[[list[tuple[str, str]]], bool],
    timeout: float = 30,
) -> list[tuple[str, str]]:
    """The object's Events (reason, message) once `done` holds for them.

    The operator posts Events from their own thread, after the status that reports the
    same transition: a test that has just seen the status waits a moment for the Event.
    """
    seen: list[tuple[str, str]] = []

    def check() -> list[tuple[str, str]] | None:
        seen[:] = events_for(core, namespace, name)
        return list(seen) if done(seen) else None

    try:
        return wait_for(check, timeout=timeout, interval=0.5)
    except AssertionError:
        raise AssertionError(f"the Events of {name} after {timeout:.0f}s: {seen}") from None


def reasons_until(
    core: client.CoreV1Api, namespace: str, name: str, *wanted: str, timeout: float = 30
) -> list[str]:
    """The object's Event reasons once every reason in `wanted` is among them (a reason
    given twice must appear at least twice)."""

    def done(events: list[tuple[str, str]]) -> bool:
        reasons = [reason for reason, _ in events]
        return all(reasons.count(reason) >= wanted.count(reason) for reason in wanted)

    return [reason for reason, _ in events_until(core, namespace, name, done, timeout)]


def settle(seconds: float) -> None:
    """Give a controller time to (wrongly) act before asserting that it did not."""
    time.sleep(seconds)


def make_namespace(
    core: client.CoreV1Api, prefix: str, labels: dict[str, str] | None = None
) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", prefix.lower())[:40].strip("-")
    name = f"{stem}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels))
    )
    return name
