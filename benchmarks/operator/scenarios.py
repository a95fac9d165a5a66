"""The operator benchmark's scenarios (issue 15, section 1), each a function returning rows.

- idle: the operator's CPU share and RSS with 0, 100 and 500 ModelDeployments that have
  nothing to do (replicas 0, their model resolved), and with 100 idle ContinuousTrainings;
- serving status: seconds until 500 new ModelDeployments all have a status;
- reaction: champion alias moves in S3 until the followers' Deployments carry the new
  version, with 500 ModelDeployments present;
- burst: 1,000 TrainingJobs created at once in a namespace whose ResourceQuota admits no
  pods (the machine stays free for the operator), then single TrainingJobs one by one.

Times are taken by the benchmark's own clock: a create's return, and the arrival of the
child's watch event, so they include the watch's delivery (a few milliseconds here).
"""

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from cluster import Cluster, continuous_training, model_deployment, training_job
from kubernetes import watch
from meter import Meter, Window, percentile

__all__ = ["Row", "Rows", "Settings", "burst", "continuous_idle", "serving"]

VERSION_LABEL = "ctrain.dev/model-version"


@dataclasses.dataclass(frozen=True)
class Settings:
    idle_seconds: float = 60.0
    settle_seconds: float = 20.0
    models: int = 50
    deployments: int = 500
    few_deployments: int = 100
    loops: int = 100
    trainingjobs: int = 1000
    moves: int = 10
    singles: int = 10
    status_timeout: float = 300.0


@dataclasses.dataclass(frozen=True)
class Row:
    what: str
    value: str
    goal: str
    load: str


class Rows(list[Row]):
    """The rows of a scenario, each printed as soon as it is measured (a run is long)."""

    def append(self, row: Row) -> None:
        print(f"  {row.what}: {row.value} (load {row.load})", flush=True)
        super().append(row)

    def extend(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.append(row)


def _idle_row(what: str, window: Window, goal: str = "<= 5% of a core") -> Row:
    text = f"{window.cpu_share:.1f}% of a core, RSS {window.rss_mib:.0f} MiB"
    return Row(what, text, goal, window.load_note)


def _seconds(value: float | None, done: int, total: int, timeout: float) -> str:
    if value is None:
        return f"timeout: {done}/{total} after {timeout:.0f} s"
    return f"{value:.1f} s"


class Watcher:
    """A background watch on one kind in one namespace: when each object was first seen and
    when its model-version label last changed (monotonic times)."""

    def __init__(self, list_call: Callable[..., Any], namespace: str) -> None:
        self.first_seen: dict[str, float] = {}
        self.version: dict[str, str | None] = {}
        self.changed: dict[str, float] = {}
        self.lock = threading.Lock()
        self._stopped = threading.Event()
        self._watch = watch.Watch()
        self._thread = threading.Thread(target=self._run, args=(list_call, namespace), daemon=True)
        self._thread.start()

    def _run(self, list_call: Callable[..., Any], namespace: str) -> None:
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(list_call, namespace, timeout_seconds=600):
                    self._seen(event["object"])
            except Exception as error:  # noqa: BLE001 - a broken stream is re-opened, not fatal
                print(f"  (watch re-opened after {error!r})")
                time.sleep(0.5)

    def _seen(self, obj: Any) -> None:
        now = time.monotonic()
        name = obj.metadata.name
        labels = (obj.spec.template.metadata.labels or {}) if obj.spec.template else {}
        version = labels.get(VERSION_LABEL)
        with self.lock:
            self.first_seen.setdefault(name, now)
            if self.version.get(name) != version:
                self.version[name] = version
                self.changed[name] = now

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()


def _with_status(cluster: Cluster, plural: str, namespace: str) -> int:
    return sum(1 for o in cluster.list_custom(plural, namespace) if (o.get("status") or {}))


def serving(cluster: Cluster, meter: Meter, settings: Settings) -> list[Row]:
    """Idle cost with 0, 500 and 100 ModelDeployments; status of 500 new ones; reaction."""
    rows = Rows()
    time.sleep(settings.settle_seconds)
    rows.append(_idle_row("idle, nothing to watch", meter.idle(settings.idle_seconds)))

    models = [f"bench-m{i:02d}" for i in range(settings.models)]
    for model in models:
        cluster.publish(model, versions=2)
    namespace = cluster.namespace("bench-md")
    deployments = Watcher(cluster.apps.list_namespaced_deployment, namespace)
    follows = {f"md-{i:03d}": models[i % len(models)] for i in range(settings.deployments)}
    mark = meter.start()
    cluster.create_all(
        "modeldeployments", namespace, [model_deployment(n, m) for n, m in follows.items()]
    )
    took, done = cluster.wait(
        lambda: _with_status(cluster, "modeldeployments", namespace),
        settings.deployments,
        settings.status_timeout,
    )
    window = meter.since(mark)
    rows.append(
        Row(
            f"{settings.deployments} new ModelDeployments: all have a status",
            _seconds(took, done, settings.deployments, settings.status_timeout)
            + f" ({window.cpu_seconds:.1f} CPU-s)",
            "<= 60 s",
            window.load_note,
        )
    )
    time.sleep(settings.settle_seconds)
    rows.append(
        _idle_row(
            f"idle, {settings.deployments} ModelDeployments", meter.idle(settings.idle_seconds)
        )
    )
    rows.append(_reaction(cluster, meter, settings, deployments, follows))
    deployments.stop()

    doomed = list(follows)[settings.few_deployments :]
    cluster.delete_all("modeldeployments", namespace, doomed)
    kept = settings.few_deployments
    cluster.wait(
        lambda: kept if len(cluster.list_custom("modeldeployments", namespace)) <= kept else 0,
        kept,
        settings.status_timeout,
    )
    time.sleep(settings.settle_seconds)
    rows.append(
        _idle_row(
            f"idle, {settings.few_deployments} ModelDeployments (after deleting the rest)",
            meter.idle(settings.idle_seconds),
        )
    )
    cluster.delete_namespace(namespace)
    return rows


def _reaction(
    cluster: Cluster,
    meter: Meter,
    settings: Settings,
    deployments: Watcher,
    follows: dict[str, str],
) -> Row:
    """Move the champion of `moves` models in turn; per follower, alias PUT -> new template."""
    latencies: list[float] = []
    missed = 0
    mark = meter.start()
    models = sorted(set(follows.values()))
    for model in random.Random(15).sample(models, min(settings.moves, len(models))):
        followers = [name for name, m in follows.items() if m == model]
        moved_at = cluster.move_champion(model, "2")
        deadline = moved_at + 60
        while time.monotonic() < deadline:
            with deployments.lock:
                done = [n for n in followers if deployments.version.get(n) == "2"]
            if len(done) == len(followers):
                break
            time.sleep(0.05)
        with deployments.lock:
            for name in followers:
                if deployments.version.get(name) == "2":
                    latencies.append(deployments.changed[name] - moved_at)
                else:
                    missed += 1
        time.sleep(random.uniform(1, 3))
    window = meter.since(mark)
    text = (
        f"p50 {percentile(latencies, 0.5):.2f} s, p99 {percentile(latencies, 0.99):.2f} s "
        f"over {len(latencies)} Deployments"
    )
    if missed:
        text += f"; {missed} not updated within 60 s"
    return Row(
        f"alias move -> Deployment updated ({len(follows)} ModelDeployments present)",
        text,
        "p99 <= 10 s",
        window.load_note,
    )


def continuous_idle(cluster: Cluster, meter: Meter, settings: Settings) -> list[Row]:
    namespace = cluster.namespace("bench-ct")
    names = [f"ct-{i:03d}" for i in range(settings.loops)]
    cluster.create_all(
        "continuoustrainings",
        namespace,
        [continuous_training(n, f"bench-m{i % settings.models:02d}") for i, n in enumerate(names)],
    )
    took, done = cluster.wait(
        lambda: _with_status(cluster, "continuoustrainings", namespace),
        settings.loops,
        settings.status_timeout,
    )
    time.sleep(settings.settle_seconds)
    window = meter.idle(settings.idle_seconds)
    rows = Rows()
    rows.extend(
        [
            Row(
                f"{settings.loops} new ContinuousTrainings: all have a status",
                _seconds(took, done, settings.loops, settings.status_timeout),
                "",
                window.load_note,
            ),
            _idle_row(f"idle, {settings.loops} ContinuousTrainings", window),
        ]
    )
    cluster.delete_namespace(namespace)
    return rows


def burst(cluster: Cluster, meter: Meter, settings: Settings) -> list[Row]:
    """1,000 TrainingJobs at once, then single ones: apply -> Job latency and the cost."""
    namespace = cluster.namespace("bench-tj", no_pods=True)
    jobs = Watcher(cluster.batch.list_namespaced_job, namespace)
    count = settings.trainingjobs
    names = [f"tj-{i:04d}" for i in range(count)]
    mark = meter.start()
    started = time.monotonic()
    created = cluster.create_all(
        "trainingjobs", namespace, [training_job(n, f"burst-{i % 20}") for i, n in enumerate(names)]
    )
    applied = time.monotonic() - started

    def jobs_seen() -> int:
        with jobs.lock:
            return len(jobs.first_seen)

    took, done = cluster.wait(jobs_seen, count, settings.status_timeout, interval=0.2)
    window = meter.since(mark)
    with jobs.lock:
        latencies = [
            jobs.first_seen[f"{n}-train"] - created[n]
            for n in names
            if f"{n}-train" in jobs.first_seen
        ]
        last = max(jobs.first_seen.values(), default=started)
    all_jobs = None if took is None else last - started
    rows = Rows()
    rows.extend(
        [
            Row(
                f"{count} TrainingJobs at once (created in {applied:.1f} s): every Job exists",
                _seconds(all_jobs, done, count, settings.status_timeout),
                "<= 20 s",
                window.load_note,
            ),
            Row(
                "  apply -> Job under the burst",
                f"p50 {percentile(latencies, 0.5):.2f} s, p99 {percentile(latencies, 0.99):.2f} s",
                "p99 <= 5 s",
                window.load_note,
            ),
            Row(
                "  operator during the burst",
                f"{window.cpu_seconds:.1f} CPU-s, peak RSS {window.peak_rss_mib:.0f} MiB",
                "RSS <= 250 MiB",
                window.load_note,
            ),
        ]
    )
    time.sleep(settings.settle_seconds)
    singles: list[float] = []
    mark = meter.start()
    for i in range(settings.singles):
        name = f"single-{i:02d}"
        at = cluster.create_all("trainingjobs", namespace, [training_job(name, "single")])[name]
        deadline = at + 60
        while time.monotonic() < deadline and f"{name}-train" not in jobs.first_seen:
            time.sleep(0.02)
        if f"{name}-train" in jobs.first_seen:
            singles.append(jobs.first_seen[f"{name}-train"] - at)
        time.sleep(1)
    window = meter.since(mark)
    missed = settings.singles - len(singles)
    rows.append(
        Row(
            f"single apply -> Job ({count} TrainingJobs present)",
            f"p50 {percentile(singles, 0.5):.2f} s, max {max(singles, default=float('nan')):.2f} s"
            + (f"; {missed} without a Job after 60 s" if missed else ""),
            "<= 1 s",
            window.load_note,
        )
    )
    jobs.stop()
    return rows
