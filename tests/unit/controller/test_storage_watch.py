"""The storage watch against a real S3 API over HTTP (moto's server): one conditional
request per fact for all its followers, changes told to followers, a silent endpoint
contained."""

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import generate_latest

from ctrain.api import Reason
from ctrain.api.contracts import ModelMetadata, Reference
from ctrain.controller import metrics
from ctrain.controller.config import OperatorConfig, StorageGrant
from ctrain.controller.runtime.store import ObjectRef
from ctrain.controller.storage.clients import Endpoint, Forbidden, Location, S3Clients
from ctrain.controller.storage.facts import DatasetFact, ModelFact, Resolved, Unreachable
from ctrain.controller.storage.watch import StorageWatch
from ctrain.registry import Registry

pytest_plugins = ["s3_fixtures"]
pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Every S3 call the operator's client made: (operation, HTTP status)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, http_response: Any, model: Any, **_: Any) -> None:
        self.calls.append((model.name, http_response.status_code))


class Watch:
    """A StorageWatch with a clock the test moves and the followers it told."""

    def __init__(self, clients: S3Clients) -> None:
        self.clock = Clock()
        self.woken: list[Endpoint] = []
        self.told: list[ObjectRef] = []
        self.watch = StorageWatch(
            clients, wake=self.woken.append, notify=self.told.append, clock=self.clock
        )


def publish(registry: Registry, model: str, count: int) -> None:
    for _ in range(count):
        version = registry.reserve_version(model)
        metadata = ModelMetadata(
            task="classification", metrics={"accuracy": 0.5 + int(version) / 10}
        )
        registry.publish(model, version, b"model", metadata, Reference(rows=1))
    registry.set_champion(model, "1", "test")


def exposition(registry: Any) -> str:
    return generate_latest(registry).decode()


def follower(index: int) -> ObjectRef:
    return ObjectRef("ModelDeployment", "ml", f"md-{index}")


@pytest.fixture
def endpoint(moto_endpoint: str, s3_env: dict[str, str]) -> Endpoint:
    return Endpoint(moto_endpoint, "us-east-1", "path")


def allowing(endpoint: Endpoint, *buckets: str) -> OperatorConfig:
    """An operator allowed `buckets` (any, by default) on `endpoint`, over plain HTTP."""
    grant = StorageGrant(endpoint.url, buckets or ("*",))
    return OperatorConfig(s3_allowed=(grant,), s3_allow_http=True)


@pytest.fixture
def watched(endpoint: Endpoint) -> tuple[Watch, Recorder]:
    clients = S3Clients(allowing(endpoint))
    recorder = Recorder()
    clients.access(endpoint, "any").meta.events.register("after-call.s3", recorder)
    return Watch(clients), recorder


def test_an_unchanged_champion_costs_one_not_modified_request_for_every_follower(
    registry: Registry, bucket: str, endpoint: Endpoint, watched: tuple[Watch, Recorder]
) -> None:
    watch, recorder = watched
    publish(registry, "iris", 2)
    fact = ModelFact(Location(endpoint, bucket, "ctrain"), "iris", "champion")
    for index in range(100):
        assert watch.watch.follow(follower(index), {fact: 10.0}) == {fact: None}
    assert watch.woken == [endpoint]  # the first read is asked for once
    assert watch.watch.poll(endpoint) is not None
    reading = watch.watch.reading(fact)
    assert reading is not None and reading.value == Resolved("1", {"accuracy": 0.6})
    assert sorted(watch.told) == sorted(follower(i) for i in range(100))

    watch.told.clear()
    recorder.calls.clear()
    assert 8.0 <= (watch.watch.poll(endpoint) or 0) <= 10.0  # nothing due: never later than asked
    assert recorder.calls == []
    watch.clock.now += 13
    watch.watch.poll(endpoint)
    assert recorder.calls == [("GetObject", 304)]  # one cheap request, no body
    assert watch.told == []

    registry.set_champion("iris", "2", "test: promote")
    watch.clock.now += 13
    watch.watch.poll(endpoint)
    reading = watch.watch.reading(fact)
    assert reading is not None and reading.value == Resolved("2", {"accuracy": 0.7})
    assert len(watch.told) == 100  # every follower learns of the move at once


def test_followers_come_and_go_and_an_unfollowed_fact_is_forgotten(
    bucket: str, endpoint: Endpoint, watched: tuple[Watch, Recorder]
) -> None:
    watch, _ = watched
    where = Location(endpoint, bucket, "ctrain")
    champion, latest = ModelFact(where, "a", "champion"), ModelFact(where, "a", "latest")
    watch.watch.follow(follower(1), {champion: 10.0})
    watch.watch.follow(follower(2), {champion: 10.0})
    watch.watch.follow(follower(1), {latest: 10.0})  # it changed its spec
    assert len(watch.watch) == 2
    watch.watch.drop(follower(2))
    assert len(watch.watch) == 1 and watch.watch.reading(champion) is None
    watch.watch.drop(follower(1))
    assert len(watch.watch) == 0
    assert watch.watch.poll(endpoint) is None  # nothing left to read there


def test_model_metrics_are_exported_for_the_versions_in_use_only(
    registry: Registry, bucket: str, endpoint: Endpoint, watched: tuple[Watch, Recorder]
) -> None:
    watch, _ = watched
    publish(registry, "iris", 3)  # versions 1..3, champion 1
    where = Location(endpoint, bucket, "ctrain")
    champion, latest = ModelFact(where, "iris", "champion"), ModelFact(where, "iris", "latest")
    watch.watch.follow(follower(1), {champion: 10.0})
    watch.watch.follow(follower(2), {latest: 10.0})
    watch.watch.poll(endpoint)
    metrics.MODEL_METRICS.source = watch.watch.model_metrics
    scrape = exposition(metrics.REGISTRY)
    series = [line for line in scrape.splitlines() if line.startswith("ctrain_model_metric{")]
    assert sorted(series) == [
        'ctrain_model_metric{metric="accuracy",model="iris",version="1"} 0.6',
        'ctrain_model_metric{metric="accuracy",model="iris",version="3"} 0.8',
    ]  # version 2 is in the registry but nobody uses it: no series
    watch.watch.drop(follower(2))
    scrape = exposition(metrics.REGISTRY)
    assert 'version="3"' not in scrape and 'version="1"' in scrape


def test_missing_models_and_datasets_are_readings_not_errors(
    s3_client: Any, bucket: str, endpoint: Endpoint, watched: tuple[Watch, Recorder]
) -> None:
    watch, recorder = watched
    where = Location(endpoint, bucket, "ctrain")
    nothing = ModelFact(where, "nothing", "champion")
    data = DatasetFact(endpoint, f"s3://{bucket}/data/iris.csv")
    watch.watch.follow(follower(1), {nothing: 10.0, data: 30.0})
    watch.watch.poll(endpoint)
    missing = watch.watch.reading(nothing)
    assert missing is not None and missing.failure is not None
    assert missing.failure.reason == Reason.VERSION_NOT_FOUND
    absent = watch.watch.reading(data)
    assert absent is not None and absent.failure is not None
    assert absent.failure.reason == Reason.DATASET_NOT_FOUND

    s3_client.put_object(Bucket=bucket, Key="data/iris.csv", Body=b"a,b\n1,2\n")
    watch.clock.now += 40
    watch.watch.poll(endpoint)
    found = watch.watch.reading(data)
    assert found is not None and isinstance(found.value, str) and found.value.startswith("etag:")
    recorder.calls.clear()
    watch.clock.now += 40
    watch.watch.poll(endpoint)
    assert ("HeadObject", 304) in recorder.calls  # the dataset read again conditionally
    assert watch.watch.reading(data) == found


@pytest.fixture
def silent_endpoint() -> Iterator[Endpoint]:
    """An endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield Endpoint(f"http://127.0.0.1:{server.getsockname()[1]}", "us-east-1", "path")
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_silent_endpoint_fails_its_due_facts_at_the_first_timeout(
    silent_endpoint: Endpoint, s3_env: dict[str, str]
) -> None:
    clients = S3Clients(allowing(silent_endpoint), connect_timeout=0.2, read_timeout=0.2)
    watch = Watch(clients)
    facts = [
        ModelFact(Location(silent_endpoint, "models", ""), f"m{i}", "champion") for i in range(12)
    ]
    for index, fact in enumerate(facts):
        watch.watch.follow(follower(index), {fact: 10.0})
    with pytest.raises(Unreachable):
        watch.watch.poll(silent_endpoint)
    for fact in facts:  # one timeout, and every follower has its answer
        reading = watch.watch.reading(fact)
        assert reading is not None and reading.failure is not None
        assert reading.failure.reason == Reason.STORAGE_ERROR
        assert "did not answer" in reading.failure.message
    assert len(set(watch.told)) == 12


def test_an_endpoint_is_asked_a_bounded_number_of_times_a_second(
    bucket: str, endpoint: Endpoint, watched: tuple[Watch, Recorder]
) -> None:
    watch, recorder = watched
    where = Location(endpoint, bucket, "ctrain")
    facts = [ModelFact(where, f"m{i}", "champion") for i in range(200)]
    for index, fact in enumerate(facts):
        watch.watch.follow(follower(index), {fact: 5.0})
    watch.watch.poll(endpoint)  # the first read of each
    recorder.calls.clear()
    reads = 0
    for _ in range(60):  # a minute, a second at a time
        watch.clock.now += 1
        watch.watch.poll(endpoint)
        reads = len(recorder.calls)
    # 200 facts asked for every 5 s would be 40 reads a second; the endpoint gets 10
    assert 10 * 55 <= reads <= 10 * 60


def test_outside_the_allowlist_no_request_is_made(
    registry: Registry, bucket: str, endpoint: Endpoint
) -> None:
    """A bucket or an endpoint the operator was not given reads as StorageForbidden, and
    the store never hears of it."""
    clients = S3Clients(allowing(endpoint, bucket))
    recorder = Recorder()
    clients.access(endpoint, bucket).meta.events.register("after-call.s3", recorder)
    watch = Watch(clients)
    publish(registry, "iris", 1)
    other = Endpoint("https://s3.elsewhere.example", "us-east-1", "path")
    facts = [
        ModelFact(Location(endpoint, "someone-elses", "ctrain"), "iris", "champion"),
        ModelFact(Location(other, bucket, "ctrain"), "iris", "champion"),
        DatasetFact(endpoint, "s3://someone-elses/data.csv"),
    ]
    for index, fact in enumerate(facts):
        watch.watch.follow(follower(index), {fact: 10.0})
        watch.watch.poll(fact.endpoint)
        reading = watch.watch.reading(fact)
        assert reading is not None and reading.failure is not None
        assert reading.failure.reason == Reason.STORAGE_FORBIDDEN
    assert recorder.calls == []
    allowed = ModelFact(Location(endpoint, bucket, "ctrain"), "iris", "champion")
    watch.watch.follow(follower(9), {allowed: 10.0})
    watch.watch.poll(endpoint)
    assert recorder.calls


def test_plain_http_and_unlisted_buckets_are_refused_by_default() -> None:
    config = OperatorConfig(s3_endpoint="http://minio:9000", default_bucket="models")
    clients = S3Clients(config)
    with pytest.raises(Forbidden, match="plain HTTP"):
        clients.access(Endpoint("http://minio:9000", "us-east-1", "path"), "models")
    secure = S3Clients(OperatorConfig(s3_endpoint="https://minio:9000"))
    secure.access(Endpoint("https://minio:9000", "us-east-1", "path"), "models")
    with pytest.raises(Forbidden, match="allowlist"):
        secure.access(Endpoint("https://minio:9000", "us-east-1", "path"), "datasets")
    with pytest.raises(Forbidden):
        secure.access(Endpoint(None, "us-east-1", "path"), "models")


def test_the_allowlist_is_read_from_the_environment() -> None:
    env = {
        "CTRAIN_S3_ALLOWED": '[{"endpoint": "https://a", "buckets": ["x", "y"]},'
        ' {"buckets": ["*"]}]',
        "CTRAIN_S3_ALLOW_HTTP": "true",
    }
    config = OperatorConfig.from_env(env)
    assert config.s3_allow_http
    assert config.storage_allowed("https://a", "y")
    assert not config.storage_allowed("https://a", "z")
    assert config.storage_allowed(None, "anything")
    with pytest.raises(ValueError, match="buckets"):
        OperatorConfig.from_env({"CTRAIN_S3_ALLOWED": '[{"endpoint": "https://a"}]'})
