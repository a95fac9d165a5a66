"""One version per TrainingJob, and promotion when the champion moves during the run.

`ctrain.trainer.run` in-process against moto's S3 server; failures are injected by an S3
client that raises at a chosen PUT (a pod killed there) or moves the champion first (a
concurrent run promoting in between).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ctrain.api.contracts import TrainingFailed, TrainingSucceeded
from ctrain.registry import Registry
from ctrain.storage import S3Client
from ctrain.trainer import TrainerContext, run

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

LOGREG = "sklearn.linear_model.LogisticRegression"
JOB = {"name": "iris-7", "namespace": "ml", "uid": "7d1c-uid"}


def _spec(bucket: str, *, max_iter: int = 200, promote: bool = True) -> dict[str, Any]:
    return {
        "model": "iris",
        "dataset": {"uri": "builtin://iris"},
        "estimator": {"type": LOGREG, "params": {"max_iter": max_iter}},
        "storage": {"bucket": bucket, "prefix": "ctrain"},
        "promote": promote,
    }


class Intercepting:
    """An S3 client that calls ``hook(key)`` before every PUT, then does the PUT."""

    def __init__(self, client: S3Client, hook: Callable[[str], None]) -> None:
        self._client, self._hook = client, hook

    def put_object(self, **kwargs: Any) -> Any:
        self._hook(kwargs["Key"])
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class Killed(Exception):
    """The pod died here."""


def _run(spec: dict[str, Any], client: Any, job: dict[str, str] | None = None) -> Any:
    context = TrainerContext(client_factory=lambda storage: client, training_job=job or {})
    return run(spec, context)


def test_a_trainer_killed_after_publishing_still_yields_one_version(
    s3_client: S3Client, bucket: str, registry: Registry
) -> None:
    def die_at_promotion(key: str) -> None:
        if key.endswith("aliases/champion.log"):
            raise Killed("killed after publishing")

    code, result = _run(_spec(bucket), Intercepting(s3_client, die_at_promotion), JOB)
    assert code == 1 and isinstance(result, TrainingFailed)  # unforeseen: retried by the Job
    assert registry.list_versions("iris") == ["1"] and registry.champion("iris") is None

    code, retried = _run(_spec(bucket), s3_client, JOB)  # the Job's next pod, same uid
    assert code == 0 and isinstance(retried, TrainingSucceeded)
    assert (retried.version, retried.promoted, retried.promotion_reason) == ("1", True, "Promoted")
    assert retried.decision is not None
    assert retried.decision.startswith("already registered by this TrainingJob")
    assert registry.list_versions("iris") == ["1"] and registry.champion("iris") == "1"

    code, again = _run(_spec(bucket), s3_client, JOB)  # e.g. after an operator restart
    assert (code, again.version, again.promoted) == (0, "1", True)
    assert registry.list_versions("iris") == ["1"]
    assert len(registry.champion_history("iris")) == 1
    other = _run(_spec(bucket), s3_client, {**JOB, "uid": "another-uid"})[1]
    assert other.version == "2"  # another TrainingJob gets its own version


def test_a_trainer_killed_before_publishing_trains_into_its_claimed_version(
    s3_client: S3Client, bucket: str, registry: Registry
) -> None:
    def die_at_upload(key: str) -> None:
        if key.endswith("/model.skops"):
            raise Killed("killed while uploading")

    code, _ = _run(_spec(bucket), Intercepting(s3_client, die_at_upload), JOB)
    assert code == 1 and registry.list_versions("iris") == []
    code, retried = _run(_spec(bucket), s3_client, JOB)
    assert (code, retried.version, retried.promoted) == (0, "1", True)
    assert retried.decision.startswith("promoted: no champion")  # trained, not re-reported
    assert registry.list_versions("iris") == ["1"]


def test_a_champion_moved_during_the_run_is_compared_again(
    s3_client: S3Client, bucket: str, registry: Registry
) -> None:
    assert _run(_spec(bucket, max_iter=1), s3_client)[1].promoted is True  # v1, weak
    strong = _run(_spec(bucket, promote=False), s3_client)[1]  # v2, as strong as the next
    assert (strong.version, strong.promoted) == ("2", False)

    moved = []

    def promote_v2_meanwhile(key: str) -> None:
        if key.endswith("aliases/champion.log") and not moved:
            moved.append(registry.set_champion("iris", "2", "a concurrent run"))

    code, result = _run(_spec(bucket), Intercepting(s3_client, promote_v2_meanwhile))
    assert code == 0 and result.version == "3"
    # Compared with v1 first (better), then with v2 (a tie): not promoted, and it says why.
    assert registry.metadata("iris", "3").comparison.champion_version == "1"  # type: ignore[union-attr]
    assert result.comparison is not None and result.comparison.champion_version == "2"
    assert (result.blessed, result.promoted) == (False, False)
    assert "re-compared: the champion moved to v2 during the run" in (result.decision or "")
    assert registry.champion("iris") == "2"
    history = registry.champion_history("iris")
    assert [(c.from_version, c.to_version) for c in history] == [(None, "1"), ("1", "2")]


def test_a_champion_that_keeps_moving_is_declined_with_champion_moved(
    s3_client: S3Client, bucket: str, registry: Registry
) -> None:
    for _ in range(3):  # three weak versions to move the champion between
        _run(_spec(bucket, max_iter=1, promote=False), s3_client)
    registry.set_champion("iris", "1", "start")
    targets = iter(["2", "3", "1"])

    def move_every_time(key: str) -> None:
        if key.endswith("aliases/champion.log"):
            target = next(targets, None)
            if target is not None:
                registry.set_champion("iris", target, "a concurrent run")

    code, result = _run(_spec(bucket), Intercepting(s3_client, move_every_time))
    assert code == 0 and result.version == "4"
    assert (result.promoted, result.promotion_reason) == (False, "ChampionMoved")
    assert "the champion kept moving during the run (v2, v3, v1)" in (result.decision or "")
    assert registry.champion("iris") == "1"
    assert result.comparison is not None and result.comparison.champion_version == "3"
