"""Registry decisions that must hold under races: champion moves, claims, rejections.

Against moto's S3 server over HTTP. moto applies If-Match/If-None-Match check-then-act
(not atomically); `CheckThenAct` makes that worst case certain: every racer passes the
condition before any of them writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.registry import (
    ChampionChange,
    ChampionMoved,
    Registry,
    VersionConflict,
    VersionNotFound,
)
from ctrain.storage import S3Client

pytestmark = pytest.mark.unit
pytest_plugins = ["s3_fixtures"]

HERE = Path(__file__).parent


class CheckThenAct:
    """An S3 client whose conditional PUTs to ``race_suffix`` keys check, wait, then act.

    The first such PUT of every racer meets the others at a barrier between its check and
    its write, so all of them pass the check: what a store without atomic conditional
    writes allows at worst. Other calls go to the real client unchanged.
    """

    def __init__(self, client: S3Client, barrier: threading.Barrier, race_suffix: str) -> None:
        self._client = client
        self._barrier = barrier
        self._suffix = race_suffix
        self._raced = threading.local()

    def put_object(self, **kwargs: Any) -> Any:
        if_match, if_none = kwargs.pop("IfMatch", None), kwargs.pop("IfNoneMatch", None)
        if if_match is None and if_none is None:
            return self._client.put_object(**kwargs)
        try:
            etag: str | None = self._client.head_object(Bucket=kwargs["Bucket"], Key=kwargs["Key"])[
                "ETag"
            ]
        except ClientError:
            etag = None
        holds = etag is None if if_none is not None else etag == if_match
        if kwargs["Key"].endswith(self._suffix) and not getattr(self._raced, "done", False):
            self._raced.done = True
            self._barrier.wait(timeout=30)
        if not holds:
            error = {"Error": {"Code": "PreconditionFailed", "Message": "condition"},
                     "ResponseMetadata": {"HTTPStatusCode": 412}}  # fmt: skip
            raise ClientError(error, "PutObject")  # type: ignore[arg-type]
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _publish(registry: Registry, model: str, body: bytes = b"model", owner: str = "") -> str:
    version = registry.reserve_version(model, owner=owner)
    registry.publish(model, version, body, ModelMetadata(), Reference(rows=1), owner=owner or None)
    return version


def _assert_chain(changes: list[ChampionChange]) -> None:
    """Line i's `from` is line i-1's `to`: the log has no gap."""
    previous = None
    for change in changes:
        assert change.from_version == previous, [c.to_json() for c in changes]
        previous = change.to_version


def _alias(s3: S3Client, bucket: str, model: str) -> str:
    key = f"ctrain/{model}/aliases/champion"
    return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())


# --- the champion: compare-and-set on the log ----------------------------------------------


def test_promote_is_a_compare_and_set(registry: Registry, s3_client: S3Client, bucket: str) -> None:
    one, two, three = (_publish(registry, "m") for _ in range(3))
    first = registry.promote("m", one, expected=None, reason="first", by="tj/a")
    assert first is not None and (first.from_version, first.to_version) == (None, "1")
    with pytest.raises(ChampionMoved) as moved:
        registry.promote("m", two, expected=None, reason="stale", by="tj/b")
    assert (moved.value.expected, moved.value.current) == (None, "1")
    registry.promote("m", two, expected=one, reason="better", by="tj/b")
    with pytest.raises(ChampionMoved):
        registry.promote("m", three, expected=one, reason="stale", by="tj/c")
    assert registry.promote("m", two, expected=two, reason="again", by="tj/b") is None
    history = registry.champion_history("m")
    assert [(c.from_version, c.to_version, c.by) for c in history] == [
        (None, "1", "tj/a"),
        ("1", "2", "tj/b"),
    ]
    assert all(c.id and c.action == "promote" for c in history)
    assert registry.champion("m") == "2" == _alias(s3_client, bucket, "m")


def test_threads_racing_to_promote_leave_a_chain_without_gaps(
    s3_client: S3Client, bucket: str
) -> None:
    registry = Registry(s3_client, bucket, "ctrain", settle_seconds=0.1)
    versions = [_publish(registry, "m") for _ in range(8)]
    start = threading.Event()

    def race(version: str) -> tuple[str, int]:
        start.wait()
        for attempt in range(60):
            try:
                registry.promote(
                    "m", version, expected=registry.champion("m"), reason="r", by=version
                )
                return version, attempt
            except ChampionMoved:
                continue
        return version, -1

    with ThreadPoolExecutor(len(versions)) as pool:
        futures = [pool.submit(race, version) for version in versions]
        start.set()
        results = [future.result() for future in futures]
    winners = {version for version, attempts in results if attempts >= 0}
    history = registry.champion_history("m")
    _assert_chain(history)
    assert winners == set(versions)  # each got in, in some order
    assert sorted(c.to_version for c in history) == sorted(versions)
    assert registry.champion("m") == history[-1].to_version == _alias(s3_client, bucket, "m")


def test_processes_racing_to_promote_leave_a_chain_without_gaps(
    s3_client: S3Client, bucket: str, s3_env: dict[str, str], tmp_path: Path
) -> None:
    registry = Registry(s3_client, bucket, "ctrain")
    versions = [_publish(registry, "race") for _ in range(4)]
    start = tmp_path / "go"
    env = {**os.environ, **s3_env}
    racers = [
        subprocess.Popen(
            [sys.executable, str(HERE / "registry_racer.py"), bucket, version, str(start)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for version in versions
    ]
    time.sleep(3)  # let every interpreter import ctrain and wait at the start line
    start.touch()
    results = [json.loads(racer.communicate(timeout=300)[0]) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers)
    history = registry.champion_history("race")
    _assert_chain(history)
    won = sorted(result["version"] for result in results if result["won"])
    assert won == sorted(c.to_version for c in history) == sorted(versions)


@pytest.mark.parametrize("racers", [2, 4])
def test_check_then_act_racers_one_promotion_wins_and_the_chain_holds(
    s3_client: S3Client, bucket: str, racers: int
) -> None:
    plain = Registry(s3_client, bucket, "ctrain")
    versions = [_publish(plain, "m") for _ in range(racers)]
    barrier = threading.Barrier(racers)
    client = CheckThenAct(s3_client, barrier, "aliases/champion.log")

    def race(version: str) -> bool:
        registry = Registry(client, bucket, "ctrain")  # type: ignore[arg-type]
        try:
            registry.promote("m", version, expected=None, reason="r", by=version)
        except ChampionMoved:
            return False
        return True

    with ThreadPoolExecutor(racers) as pool:
        won = [v for v, ok in zip(versions, pool.map(race, versions), strict=True) if ok]
    history = plain.champion_history("m")
    _assert_chain(history)
    # Every racer wrote the whole log over the same empty one: one line survived, and only
    # its writer believes it promoted.
    assert [c.to_version for c in history] == won
    assert plain.champion("m") == won[0] == _alias(s3_client, bucket, "m")


def test_a_legacy_alias_without_a_log_is_the_start_of_the_chain(
    registry: Registry, s3_client: S3Client, bucket: str
) -> None:
    one, two = _publish(registry, "m"), _publish(registry, "m")
    s3_client.put_object(Bucket=bucket, Key="ctrain/m/aliases/champion", Body=b"1")
    assert registry.champion("m") == "1"
    with pytest.raises(ChampionMoved):
        registry.promote("m", two, expected=None, reason="r")
    registry.promote("m", two, expected=one, reason="r")
    assert [(c.from_version, c.to_version) for c in registry.champion_history("m")] == [("1", "2")]


# --- rejected versions -------------------------------------------------------------------


def test_rejected_versions_are_never_champion_or_latest(
    registry: Registry, s3_client: S3Client, bucket: str
) -> None:
    for _ in range(3):
        version = _publish(registry, "m")
        registry.set_champion("m", version, "next", by="tester")
    assert registry.resolve("m", "champion") == "3" == registry.resolve("m", "latest")

    mark = registry.reject("m", "3", reason="sha256 mismatch", by="ModelDeployment ns/web")
    assert (mark.reason, mark.by) == ("sha256 mismatch", "ModelDeployment ns/web")
    again = registry.reject("m", "3", reason="other", by="x")
    assert again.reason == "sha256 mismatch"  # the first rejection stands
    assert registry.rejected("m", "3") == mark and registry.rejected("m", "2") is None
    assert registry.rejected_versions("m") == {"3"}
    # Not demoted yet: the alias still says 3, but nothing resolves to it.
    assert registry.champion("m") == "3"
    assert registry.resolve("m", "champion") == "2"
    assert registry.resolve("m", "latest") == "2"
    assert registry.resolve("m", "3") == "3"  # by number it is still there to inspect
    assert registry.list_versions("m") == ["1", "2", "3"]

    change = registry.demote("m", "3", reason="canary failed", by="ModelDeployment ns/web")
    assert (change.from_version, change.to_version, change.action) == ("3", "2", "demote")
    assert change.by == "ModelDeployment ns/web" and change.reason == "canary failed"
    assert registry.champion("m") == "2" == _alias(s3_client, bucket, "m")
    with pytest.raises(ChampionMoved):  # compare-and-set: 3 no longer is the champion
        registry.demote("m", "3", reason="twice", by="x")
    _assert_chain(registry.champion_history("m"))


def test_demote_skips_rejected_champions_and_needs_one_to_go_back_to(
    registry: Registry,
) -> None:
    for _ in range(3):
        registry.set_champion("m", _publish(registry, "m"), "next")
    registry.reject("m", "2", reason="bad", by="x")
    registry.reject("m", "3", reason="bad", by="x")
    assert registry.previous_champion("m") == "1"
    assert registry.demote("m", "3", reason="bad", by="x").to_version == "1"
    registry.reject("m", "1", reason="bad", by="x")
    with pytest.raises(VersionNotFound):
        registry.demote("m", "1", reason="bad", by="x")
    with pytest.raises(VersionNotFound):
        registry.resolve("m", "champion")


def test_promoting_a_rejected_version_by_hand_unrejects_it(registry: Registry) -> None:
    one, two = _publish(registry, "m"), _publish(registry, "m")
    registry.set_champion("m", one, "first")
    registry.set_champion("m", two, "second")
    registry.reject("m", two, reason="5xx in canary", by="md")
    registry.demote("m", two, reason="5xx in canary", by="md")

    change = registry.set_champion("m", two, "fixed upstream", by="alice")
    assert change is not None and change.unrejected and change.to_version == two
    assert "un-rejected; it was rejected: 5xx in canary" in change.reason
    assert registry.rejected("m", two) is None
    assert registry.resolve("m", "champion") == two
    # Rejected while champion, then promoted by hand: the log says so, from 2 to 2.
    registry.reject("m", two, reason="again", by="md")
    same = registry.set_champion("m", two, "really fine", by="alice")
    assert same is not None and (same.from_version, same.to_version) == (two, two)
    assert same.action == "unreject" and registry.rejected("m", two) is None
    _assert_chain(registry.champion_history("m"))


# --- claims: one version per TrainingJob, never another writer's files -------------------


def test_a_trainingjob_claims_one_version_and_finds_it_again(registry: Registry) -> None:
    first = registry.claim_for_job("m", "uid-1")
    assert (first.version, first.reused) == ("1", False)
    assert registry.owner("m", "1") == "uid-1"
    assert registry.claim_for_job("m", "uid-2").version == "2"
    again = registry.claim_for_job("m", "uid-1")
    assert (again.version, again.reused) == ("1", True)
    assert registry.reserve_version("m") == "3"


def test_publish_refuses_a_version_claimed_by_another_writer(
    registry: Registry, s3_client: S3Client, bucket: str
) -> None:
    version = registry.claim_for_job("m", "winner").version
    with pytest.raises(VersionConflict, match="claimed by another writer"):
        registry.publish("m", version, b"loser", ModelMetadata(), Reference(rows=1), owner="loser")
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="ctrain/m/versions/1/")
    assert [item["Key"] for item in listed.get("Contents", [])] == ["ctrain/m/versions/1/.claim"]
    registry.publish("m", version, b"winner", ModelMetadata(), Reference(rows=1), owner="winner")
    assert registry.metadata("m", version).model_sha256 is not None


def test_check_then_act_claim_race_the_loser_never_touches_the_winners_files(
    s3_client: S3Client, bucket: str
) -> None:
    barrier = threading.Barrier(2)
    client = CheckThenAct(s3_client, barrier, "/.claim")
    bodies = {"a": b"model of a" * 100, "b": b"model of b" * 100}

    def race(name: str) -> str:
        registry = Registry(client, bucket, "ctrain")  # type: ignore[arg-type]
        claim = registry.claim_for_job("m", f"uid-{name}")
        registry.publish("m", claim.version, bodies[name], ModelMetadata(), Reference(rows=1),
                         owner=f"uid-{name}")  # fmt: skip
        return claim.version

    with ThreadPoolExecutor(2) as pool:
        got = dict(zip(bodies, pool.map(race, bodies), strict=True))
    # Both wrote a claim on v1 after passing the check; the read-back gave v1 to one only.
    assert sorted(got.values()) == ["1", "2"]
    plain = Registry(s3_client, bucket, "ctrain")
    for name, version in got.items():
        stored = s3_client.get_object(Bucket=bucket, Key=f"ctrain/m/versions/{version}/model.skops")
        assert stored["Body"].read() == bodies[name]
        assert plain.owner("m", version) == f"uid-{name}"
        assert plain.claim_for_job("m", f"uid-{name}").version == version


class FailingMetadata:
    """A client whose PUT of metadata.json fails; ``before`` runs first (a takeover)."""

    def __init__(self, client: S3Client, before: Any = None) -> None:
        self._client, self._before = client, before

    def put_object(self, **kwargs: Any) -> Any:
        if kwargs["Key"].endswith("/metadata.json"):
            if self._before is not None:
                self._before()
            error = {"Error": {"Code": "InternalError", "Message": "boom"},
                     "ResponseMetadata": {"HTTPStatusCode": 500}}  # fmt: skip
            raise ClientError(error, "PutObject")  # type: ignore[arg-type]
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _names(s3: S3Client, bucket: str, version: str) -> list[str]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"ctrain/m/versions/{version}/")
    return sorted(item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", []))


def test_a_failed_publish_deletes_its_files_only_while_the_claim_is_its_own(
    s3_client: S3Client, bucket: str
) -> None:
    plain = Registry(s3_client, bucket, "ctrain")
    failing = Registry(FailingMetadata(s3_client), bucket, "ctrain")  # type: ignore[arg-type]
    version = plain.claim_for_job("m", "mine").version
    with pytest.raises(Exception, match="boom"):
        failing.publish("m", version, b"x", ModelMetadata(), Reference(rows=1), owner="mine")
    assert _names(s3_client, bucket, version) == [".claim"]  # its own files, removed

    # Another writer took the claim over while this one was uploading: nothing is deleted.
    other = plain.claim_for_job("m", "slow").version

    def take_over() -> None:
        body = json.dumps({"token": "t", "owner": "fast"}).encode()
        s3_client.put_object(Bucket=bucket, Key=f"ctrain/m/versions/{other}/.claim", Body=body)

    late = Registry(FailingMetadata(s3_client, take_over), bucket, "ctrain")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="boom"):
        late.publish("m", other, b"y", ModelMetadata(), Reference(rows=1), owner="slow")
    assert _names(s3_client, bucket, other) == [".claim", "model.skops", "reference.json"]
