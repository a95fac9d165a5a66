"""kill -9 the operator at random moments while TrainingJobs of three models race for versions.

The operator process (its own pid) is killed with SIGKILL at seeded random moments and
started again each time, while 30 TrainingJobs of 3 models train, claim versions and move
their champions. Afterwards nothing may be lost or doubled: exactly one Job per
TrainingJob (owned by its uid), one published version per TrainingJob (the claim under
its uid names it), every version complete (metadata, a model whose sha256 matches,
reference statistics), each champion log a chain without gaps ending at a complete
version, every TrainingJob Succeeded. The figures are printed as a table (README,
"Reliability").
"""

import collections
import random
import time
import uuid
from typing import Any

import pytest
from kubernetes import client

from ctrain.registry import Registry
from kubehelpers import wait_for

pytestmark = [pytest.mark.reliability, pytest.mark.integration, pytest.mark.timeout(1800)]
GROUP, VERSION, PLURAL = "ctrain.dev", "v1alpha1", "trainingjobs"
SEED = 16
MODELS = 3
PER_MODEL = 10
MAX_KILLS = 12
TERMINAL = ("Succeeded", "Failed")


def _manifest(name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": {
            "model": model,
            "dataset": {"uri": "builtin://iris"},
            "estimator": {
                "type": "sklearn.linear_model.LogisticRegression",
                "params": {"max_iter": 300},
            },
        },
    }


def _bodies(custom: client.CustomObjectsApi, namespace: str) -> list[dict[str, Any]]:
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
    return list(listed["items"])


def _phase(body: dict[str, Any]) -> str:
    return str((body.get("status") or {}).get("phase") or "")


def _all_finished(custom: client.CustomObjectsApi, namespace: str) -> list[dict[str, Any]] | None:
    bodies = _bodies(custom, namespace)
    return bodies if all(_phase(b) in TERMINAL for b in bodies) else None


def _chain_gaps(registry: Registry, model: str) -> int:
    """Lines of the champion log whose `from` is not the previous line's `to`."""
    gaps, previous = 0, None
    for change in registry.champion_history(model):
        if change.from_version != previous:
            gaps += 1
        previous = change.to_version
    return gaps


def _incomplete(registry: Registry, model: str, version: str) -> str | None:
    """Why `version` is not complete; None when it is."""
    try:
        registry.load(model, version)  # metadata.json and a model whose sha256 matches
        registry.reference(model, version)
    except Exception as error:  # noqa: BLE001 - the reason is the finding, reported below
        return f"{type(error).__name__}: {error}"
    return None


def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    sandbox: Any,
    api_client: client.ApiClient,
    batch: client.BatchV1Api,
    s3: Any,
    operator: Any,
    ml_namespace: str,
) -> None:
    custom = client.CustomObjectsApi(api_client)
    rng = random.Random(SEED)
    models = [f"crash-{i}-{uuid.uuid4().hex[:6]}" for i in range(MODELS)]
    started = time.monotonic()
    for n in range(PER_MODEL):
        for m, model in enumerate(models):
            manifest = _manifest(f"race-{m}-{n}", model)
            custom.create_namespaced_custom_object(GROUP, VERSION, ml_namespace, PLURAL, manifest)
    kills = 0
    deadline = started + 1500
    while time.monotonic() < deadline:
        if all(_phase(b) in TERMINAL for b in _bodies(custom, ml_namespace)):
            break
        time.sleep(rng.uniform(0.5, 8.0))
        if kills < MAX_KILLS:
            operator.kill()
            kills += 1
            time.sleep(rng.uniform(0.0, 2.0))  # down for a moment: Jobs run on without it
            operator.start()
    seconds = time.monotonic() - started
    bodies = wait_for(
        lambda: _all_finished(custom, ml_namespace), timeout=120, what="every TrainingJob finished"
    )

    registry = Registry(s3, "models", "ctrain")
    jobs = batch.list_namespaced_job(ml_namespace).items
    jobs_of: collections.Counter[str] = collections.Counter(
        ref.uid for job in jobs for ref in job.metadata.owner_references or []
    )
    published_by: collections.defaultdict[str, list[tuple[str, str]]] = collections.defaultdict(
        list
    )
    incomplete: list[str] = []
    versions = 0
    for model in models:
        for version in registry.list_versions(model):
            versions += 1
            uid = registry.metadata(model, version).training_job.get("uid", "")
            published_by[uid].append((model, version))
            why = _incomplete(registry, model, version)
            if why:
                incomplete.append(f"{model} v{version}: {why}")
    failed = [f"{b['metadata']['name']}: {b['status'].get('message')}"
              for b in bodies if _phase(b) != "Succeeded"]  # fmt: skip
    wrong_jobs, duplicates, mismatched = [], [], []
    for body in bodies:
        uid, model = body["metadata"]["uid"], body["spec"]["model"]
        if jobs_of[uid] != 1:
            wrong_jobs.append(f"{body['metadata']['name']}: {jobs_of[uid]} Jobs")
        if len(published_by[uid]) > 1:
            duplicates.append(f"{body['metadata']['name']}: {published_by[uid]}")
        claimed = registry.job_version(model, uid)
        if claimed != body["status"].get("modelVersion") or [(model, claimed)] != published_by[uid]:
            mismatched.append(
                f"{body['metadata']['name']}: claim {claimed}, status "
                f"{body['status'].get('modelVersion')}, published {published_by[uid]}"
            )
    champions = {model: registry.champion(model) for model in models}
    gaps = sum(_chain_gaps(registry, model) for model in models)
    bad_champions = [
        f"{model}: {champion}"
        for model, champion in champions.items()
        if champion is None or _incomplete(registry, model, champion) is not None
    ]

    print(f"\noperator crashes (seed {SEED})")
    print(f"{'TrainingJobs':<14}{'kills':>6}{'versions':>10}{'duplicates':>12}"
          f"{'incomplete':>12}{'seconds':>9}")  # fmt: skip
    print(f"{len(bodies):<14}{kills:>6}{versions:>10}{len(duplicates):>12}"
          f"{len(incomplete):>12}{seconds:>9.0f}")  # fmt: skip
    print(f"Jobs {len(jobs)}; champion log gaps {gaps}; champions {champions}")
    assert len(bodies) == MODELS * PER_MODEL
    assert kills >= 3, "the run finished before the operator was killed often enough"
    assert failed == []
    assert wrong_jobs == [] and len(jobs) == len(bodies)
    assert duplicates == [] and mismatched == []
    assert versions == len(bodies)
    assert incomplete == []
    assert gaps == 0 and bad_champions == []
