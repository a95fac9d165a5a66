"""Hundreds of hostile or malformed specs of all three kinds against the real operator.

Each spec is either rejected at admission (the CRD's schema and CEL) or admitted and then
given a status by the operator: Failed or Degraded with a reason, or whatever a valid
object reaches. None may be left without a status, the operator keeps its pid, and a
valid TrainingJob created after the flood still trains. The figures are printed as a table
(README, "Reliability").
"""

import collections
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubehelpers import wait_phase

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.timeout(1200)]
GROUP, VERSION = "ctrain.dev", "v1alpha1"
PLURALS = {
    "TrainingJob": "trainingjobs",
    "ModelDeployment": "modeldeployments",
    "ContinuousTraining": "continuoustrainings",
}
TJ = {
    "model": "hostile",
    "dataset": {"uri": "builtin://iris"},
    "estimator": {"type": "sklearn.linear_model.LogisticRegression"},
}
LONG = "x" * 300


def _tj_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, spec): most are refused by the apiserver; the admitted ones fail fast."""
    bad_values: list[tuple[str, Any]] = [
        ("model", "UPPER"),
        ("model", LONG),
        ("model", ""),
        ("model", 7),
        ("dataset", {"uri": "file:///etc/passwd"}),
        ("dataset", {"uri": "s3://b"}),
        ("dataset", {"uri": LONG}),
        ("dataset", "builtin://iris"),
        ("estimator", {"type": "os.system"}),
        ("estimator", {"type": "sklearn.linear_model.LogisticRegression", "params": []}),
        ("evaluation", {"testSize": 2}),
        ("evaluation", {"testSize": -1}),
        ("evaluation", {"gates": [{"metric": "accuracy"}]}),
        ("evaluation", {"gates": [{"metric": "accuracy", "min": 0.9, "max": 0.1}]}),
        ("evaluation", {"metrics": ["vibes"]}),
        ("evaluation", {"significance": {"test": "Astrology"}}),
        ("resources", {"limit": {"cpu": "1"}}),
        ("resources", {"limits": {"cpu": "lots"}}),
        ("resources", {"limits": "1"}),
        ("storage", {"bucket": "A"}),
        ("storage", {"bucket": "models", "endpoint": "ftp://x"}),
        ("storage", {"bucket": "models", "encryption": {"type": "ROT13"}}),
        ("storage", {"bucket": "models", "encryption": {"type": "AES256", "kmsKeyId": "k"}}),
        ("backoffLimit", -1),
        ("activeDeadlineSeconds", 0),
        ("ttlSecondsAfterFinished", 1),
        ("promote", "yes please"),
        ("unknownField", 1),
    ]
    for index, (field, value) in enumerate(bad_values):
        yield f"tj-bad-{index}", {**TJ, field: value}
    # Admitted, then refused by the operator or the trainer: status with a reason.
    yield "tj-exfiltrate", {**TJ, "estimator": {**TJ["estimator"], "params": {"$(HOME)": 1}}}
    yield (
        "tj-forbidden",
        {**TJ, "storage": {"bucket": "models", "endpoint": "https://127.0.0.1:9"}},
    )
    yield "tj-missing-data", {**TJ, "dataset": {"uri": "s3://no-such-bucket/x.csv", "target": "y"}}


def _md_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    bad_values: list[tuple[str, Any]] = [
        ("model", "Nope"),
        ("version", "newest"),
        ("version", "0"),
        ("replicas", -1),
        ("replicas", 1000),
        ("strategy", {"type": "Teleport"}),
        ("strategy", {"type": "RollingUpdate", "canary": {"weight": 10}}),
        ("strategy", {"type": "Canary", "canary": {"weight": 500}}),
        ("resources", {"requests": {"memory": "a lot"}}),
        ("monitoring", {"drift": {"threshold": -3}}),
        ("storage", {"bucket": "no"}),
        ("progressDeadlineSeconds", -5),
        ("extra", True),
    ]
    for index, (field, value) in enumerate(bad_values):
        yield f"md-bad-{index}", {"model": "hostile", field: value}
    # Admitted: a model that does not exist, storage the operator may not read.
    yield "md-no-model", {"model": f"absent-{uuid.uuid4().hex[:6]}"}
    yield (
        "md-forbidden",
        {"model": "hostile", "storage": {"bucket": "x-y-z", "endpoint": "https://127.0.0.1:9"}},
    )


def _ct_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    template = {"spec": TJ}
    bad: list[dict[str, Any]] = [
        {"template": template, "triggers": {"schedule": "0 0 30 2 *"}},
        {"template": template, "triggers": {"schedule": "every tuesday"}},
        {"template": template, "triggers": {"schedule": "* * * * *", "timeZone": "Mars/Base"}},
        {"template": template, "concurrencyPolicy": "Sometimes"},
        {"template": {"spec": {**TJ, "model": "BAD"}}},
        {"template": template, "triggers": {"onDrift": {"deploymentName": LONG}}},
        {"template": template, "successfulRunsHistoryLimit": -1},
        {},
    ]
    for index, spec in enumerate(bad):
        yield f"ct-bad-{index}", spec


def _names(kind: str, base: str, round_: int) -> list[str]:
    """Hostile names on top of hostile specs: too long, not DNS-1035, fine."""
    fine = f"{base}-{round_}"
    if kind == "ModelDeployment":
        return [fine, f"9{fine}", "m" * 64]
    return [fine, "t" * 64] if kind == "TrainingJob" else [fine]


def hostile_objects() -> list[tuple[str, str, dict[str, Any]]]:
    objects = []
    for round_ in range(2):
        for kind, specs in (
            ("TrainingJob", _tj_specs()),
            ("ModelDeployment", _md_specs()),
            ("ContinuousTraining", _ct_specs()),
        ):
            for base, spec in specs:
                for name in _names(kind, base, round_):
                    objects.append((kind, name, spec))
    return objects


def _ready_reason(status: dict[str, Any]) -> str:
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("reason"))
    return "-"


def test_hostile_specs_never_wedge_the_operator(
    api_client: client.ApiClient, operator: Any, ml_namespace: str
) -> None:
    custom = client.CustomObjectsApi(api_client)
    objects = hostile_objects()
    assert len(objects) >= 200
    pid = operator.process.pid
    rejected: collections.Counter[str] = collections.Counter()
    admitted: list[tuple[str, str]] = []
    unexpected: list[tuple[str, str, int]] = []
    for kind, name, spec in objects:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}}
        body["spec"] = spec
        try:
            custom.create_namespaced_custom_object(
                GROUP, VERSION, ml_namespace, PLURALS[kind], body, field_validation="Strict"
            )
        except ApiException as error:
            if error.status in (400, 422):
                rejected[kind] += 1
            else:
                unexpected.append((kind, name, error.status))
            continue
        admitted.append((kind, name))

    def statuses() -> dict[tuple[str, str], dict[str, Any]]:
        found = {}
        for kind, name in admitted:
            body = custom.get_namespaced_custom_object(
                GROUP, VERSION, ml_namespace, PLURALS[kind], name
            )
            found[(kind, name)] = body.get("status") or {}
        return found

    deadline = time.monotonic() + 300
    seen = statuses()
    while time.monotonic() < deadline and not all(s.get("phase") for s in seen.values()):
        time.sleep(3)
        seen = statuses()
    stuck = [key for key, status in seen.items() if not status.get("phase")]
    outcomes: collections.Counter[tuple[str, str, str]] = collections.Counter(
        (kind, str(status.get("phase")), _ready_reason(status))
        for (kind, _), status in seen.items()
    )
    # A valid object after the flood: the operator still reconciles.
    valid = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingJob"}
    valid["metadata"] = {"name": "after-the-flood"}
    valid["spec"] = {**TJ, "model": f"valid-{uuid.uuid4().hex[:6]}"}
    custom.create_namespaced_custom_object(GROUP, VERSION, ml_namespace, "trainingjobs", valid)
    after = wait_phase(
        custom, "trainingjobs", ml_namespace, "after-the-flood", ("Succeeded", "Failed")
    )
    alive = operator.process.pid == pid and operator.process.alive()

    print("\nhostile specs", len(objects), "admission rejections", sum(rejected.values()))
    print(f"{'kind':<20} {'rejected':>8}")
    for kind in PLURALS:
        print(f"{kind:<20} {rejected[kind]:>8}")
    print(f"{'kind':<20} {'phase':<12} {'Ready reason':<20} {'admitted':>8}")
    for (kind, phase, reason), count in sorted(outcomes.items()):
        print(f"{kind:<20} {phase:<12} {reason:<20} {count:>8}")
    print(f"stuck without status: {len(stuck)}; operator same pid and alive: {alive}")
    print(f"valid TrainingJob after the flood: {after['status']['phase']}")

    assert not unexpected, unexpected
    assert not stuck, stuck
    assert alive
    assert after["status"]["phase"] == "Succeeded", after["status"].get("message")
    failed = [s for s in seen.values() if s.get("phase") in ("Failed", "Degraded")]
    assert all(s.get("message") for s in failed)
