"""Reconcile one ContinuousTraining: observe the triggers, start runs, follow them, report.

One pass reads the loop, its runs (TrainingJobs), the dataset's identity (when a poll is
due), the drift of the named ModelDeployment and the champion in the registry; `decide`
(pure, `triggers`) says what to do; this module does it and writes status. A new run
is first recorded in status (`activeRun`, Running=True reason Triggered) and only then
created, so a crash in between recreates that same run on the next pass. Events are
posted on transitions only: a trigger, a skip, a replacement, a run's outcome, a champion
change, a new problem.
"""

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ctrain.api import (
    GROUP,
    VERSION,
    ConditionType,
    ContinuousTraining,
    ContinuousTrainingSpec,
    ContinuousTrainingStatus,
    ModelDeployment,
    Reason,
    TrainingJob,
)
from ctrain.api.common import format_time, validation_message
from ctrain.controller.conditions import changed_conditions
from ctrain.controller.config import OperatorConfig
from ctrain.controller.continuoustraining import builders as build
from ctrain.controller.continuoustraining.triggers import (
    TRIGGER_ANNOTATION,
    Action,
    InvalidTrigger,
    ObjectIdentity,
    Observations,
    decide,
    fingerprint,
    poll_due,
)
from ctrain.controller.kube import Kube
from ctrain.controller.names import label_value
from ctrain.controller.podspec import storage_settings
from ctrain.registry import Registry, RegistryError
from ctrain.storage import S3Client, make_s3_client, parse_s3_uri

__all__ = [
    "CHAMPION_CHANGED",
    "MODELDEPLOYMENTS",
    "PLURAL",
    "RESUMED",
    "RUNS",
    "RUN_DELETED",
    "RUN_REPLACED",
    "LoopMemory",
    "Seen",
    "reconcile",
]

log = logging.getLogger("ctrain.operator")
PLURAL = ContinuousTraining.PLURAL
RUNS = TrainingJob.PLURAL
MODELDEPLOYMENTS = ModelDeployment.PLURAL
# Event reasons beyond ctrain.api.Reason (which names condition reasons).
RUN_REPLACED, RUN_DELETED = "RunReplaced", "RunDeleted"
CHAMPION_CHANGED, RESUMED = "ChampionChanged", "Resumed"
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_DENIED = {"403", "AccessDenied", "Forbidden"}


@dataclasses.dataclass(frozen=True)
class Seen:
    """One observation of the outside world: when, of what, the value or the problem."""

    at: datetime
    source: str  # the dataset URI, or the model whose champion was read
    value: Any
    problem: build.Problem | None = None


@dataclasses.dataclass
class LoopMemory:
    """What the operator process keeps between passes, not worth a status field: the latest
    dataset and registry observations of each loop (by uid), and the S3 clients."""

    seen: dict[tuple[str, str], Seen] = dataclasses.field(default_factory=dict)
    clients: dict[tuple[str | None, str], S3Client] = dataclasses.field(default_factory=dict)
    guard: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def client(self, storage: dict[str, Any], config: OperatorConfig) -> S3Client:
        key = (storage.get("endpoint"), storage["region"])
        with self.guard:
            if key not in self.clients:
                self.clients[key] = make_s3_client(
                    endpoint_url=key[0],
                    region_name=key[1],
                    addressing_style=config.s3_addressing_style,
                    max_attempts=2,
                    read_timeout=10.0,
                )
            return self.clients[key]

    def recall(
        self,
        uid: str,
        what: str,
        source: str,
        due: Callable[[datetime], bool],
        read: Callable[[], Seen],
    ) -> Seen:
        """The last observation of `what`, or a fresh one when it is due or its source moved."""
        with self.guard:
            known = self.seen.get((uid, what))
        if known is None or known.source != source or due(known.at):
            known = read()  # one pass per loop at a time (Kube.lock): no double reads
            with self.guard:
                self.seen[(uid, what)] = known
        return known

    def forget(self, uid: str) -> None:
        with self.guard:
            for key in [k for k in self.seen if k[0] == uid]:
                del self.seen[key]


def reconcile(
    kube: Kube,
    config: OperatorConfig,
    namespace: str,
    name: str,
    now: datetime | None = None,
    memory: LoopMemory | None = None,
) -> None:
    with kube.locked(PLURAL, namespace, name) as body:
        if body is not None:
            _Pass(kube, config, memory or LoopMemory(), body, now or datetime.now(UTC)).run()


class _Pass:
    """One reconcile of one loop: `status` is what it will write, `events` what it will post."""

    def __init__(
        self,
        kube: Kube,
        config: OperatorConfig,
        memory: LoopMemory,
        body: dict[str, Any],
        now: datetime,
    ) -> None:
        self.kube, self.config, self.memory, self.body, self.now = kube, config, memory, body, now
        meta = body["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.old: dict[str, Any] = dict(body.get("status") or {})
        self.status = dict(self.old)
        self.written = dict(self.old)
        self.events: list[tuple[str, str, bool]] = []
        self.problem: build.Problem | None = None
        self.spec: ContinuousTrainingSpec | None = None
        self.runs: list[build.Run] = []

    def run(self) -> None:
        selector = f"{build.CONTINUOUS_LABEL}={label_value(self.name)}"
        bodies = self.kube.list_custom(RUNS, self.ns, label_selector=selector)
        self.runs = build.owned_runs(bodies, self.uid)
        tracking = build.track(self.old, self.runs)
        self._follow(tracking)
        try:
            spec = self.spec = ContinuousTrainingSpec.parse(self.body.get("spec") or {})
        except ValidationError as error:
            self.problem = build.Problem(Reason.INVALID_SPEC, validation_message(error))
            self._finish()
            return
        problems: list[build.Problem] = []
        seen = self._observe(spec, tracking, problems)
        self._champion(spec, force=tracking.finished is not None, problems=problems)
        self.problem = problems[0] if problems else None
        try:
            decision = decide(spec, ContinuousTrainingStatus.parse(self.old), seen, self.now)
        except InvalidTrigger as error:
            self.problem = build.Problem(Reason.INVALID_SPEC, str(error))
            self._finish()
            return
        if tracking.create_pending:
            self._create(spec, self.status["activeRun"], self.status.get("lastTriggered") or {})
        if decision.action in (Action.START, Action.REPLACE):
            self.status.update(decision.updates)
            replacing = tracking.active if decision.action == Action.REPLACE else None
            self._start(spec, decision.message, replacing)
        elif decision.action == Action.SKIP:
            self.status.update(decision.updates)
            self.events.append((Reason.CONCURRENCY_FORBIDDEN, decision.message, False))
        if spec.concurrency_policy == "Replace":
            for stale in tracking.others:
                self._delete(stale, "replaced")
        self._finish()
        limits = (spec.successful_runs_history_limit, spec.failed_runs_history_limit)
        for doomed in build.runs_to_prune(self.runs, *limits):
            self._delete(doomed, "history limit")

    # --- following runs --------------------------------------------------------------------

    def _follow(self, tracking: build.Tracking) -> None:
        self.status["activeRun"] = tracking.active
        if tracking.finished is not None:
            run = tracking.finished
            decision = build.outcome(run)
            self.status.update(lastRun=run.name, lastRunPhase=run.phase, lastDecision=decision)
            succeeded = run.phase == "Succeeded"
            reason = Reason.RUN_SUCCEEDED if succeeded else Reason.RUN_FAILED
            self.events.append((reason, decision, not succeeded))
        if tracking.vanished:
            message = f"run {tracking.vanished} failed: it was deleted before it finished"
            self.status.update(lastRun=tracking.vanished, lastRunPhase="Failed", message=message)
            self.events.append((RUN_DELETED, message, True))

    # --- observing -------------------------------------------------------------------------

    def _observe(
        self, spec: ContinuousTrainingSpec, tracking: build.Tracking, problems: list[build.Problem]
    ) -> Observations:
        meta = self.body["metadata"]
        created = meta.get("creationTimestamp")
        fields: dict[str, Any] = {
            "created": datetime.fromisoformat(created) if created else None,
            "trigger_annotation": (meta.get("annotations") or {}).get(TRIGGER_ANNOTATION),
            "active_run": tracking.active,
        }
        triggers = spec.triggers
        if triggers.on_drift is not None:
            fields.update(self._drift(triggers.on_drift.deployment, problems))
        if triggers.on_new_data is not None:
            uri = spec.template.spec.dataset.uri
            interval = triggers.on_new_data.poll_interval_seconds
            data = self.memory.recall(
                self.uid,
                "dataset",
                uri,
                lambda at: poll_due(at, interval, self.now),
                lambda: self._dataset(spec),
            )
            fields["data_fingerprint"] = data.value
            if data.problem is not None:
                problems.append(data.problem)
        return Observations(**fields)

    def _drift(self, deployment: str, problems: list[build.Problem]) -> dict[str, Any]:
        md = self.kube.get_custom(MODELDEPLOYMENTS, self.ns, deployment)
        if md is None:
            problems.append(
                build.Problem(
                    Reason.DEPLOYMENT_NOT_FOUND,
                    f"spec.triggers.onDrift.deployment: ModelDeployment {deployment} does not "
                    f"exist in namespace {self.ns}",
                )
            )
            return {}
        drift = (md.get("status") or {}).get("drift") or {}
        score = drift.get("score")
        scored = f" (score {score:.4f})" if isinstance(score, int | float) else ""
        detail = f"ModelDeployment {deployment} reports drift{scored}"
        return {"drift_detected": drift.get("detected") is True, "drift_detail": detail}

    def _dataset(self, spec: ContinuousTrainingSpec) -> Seen:
        """The dataset's fingerprint, or the problem that kept us from reading it."""
        uri = spec.template.spec.dataset.uri
        if uri.startswith("builtin://"):
            return Seen(self.now, uri, uri)  # a toy set never changes
        storage = storage_settings(spec.template.spec.storage, self.config)
        try:
            bucket, key = parse_s3_uri(uri)
            s3 = self.memory.client(storage, self.config)
            if not key.endswith("/"):
                head = s3.head_object(Bucket=bucket, Key=key)
                return Seen(self.now, uri, fingerprint([ObjectIdentity.from_head(key, head)]))
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
            listed = [o for page in pages for o in page.get("Contents") or []]
            found = fingerprint([ObjectIdentity.from_listing(o) for o in listed], prefix=True)
            if found is None:
                problem = build.Problem(Reason.DATASET_NOT_FOUND, f"no objects under {uri}")
                return Seen(self.now, uri, None, problem)
            return Seen(self.now, uri, found)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            reason = Reason.STORAGE_ERROR
            if code in _NOT_FOUND:
                reason = Reason.DATASET_NOT_FOUND
            elif code in _DENIED:
                reason = Reason.DATASET_UNREADABLE
            problem = build.Problem(reason, f"checking dataset {uri}: {code or error}")
        except (BotoCoreError, ValueError) as error:
            problem = build.Problem(Reason.STORAGE_ERROR, f"checking dataset {uri}: {error}")
        return Seen(self.now, uri, None, problem)

    def _champion(
        self, spec: ContinuousTrainingSpec, *, force: bool, problems: list[build.Problem]
    ) -> None:
        interval = self.config.registry_poll_seconds
        seen = self.memory.recall(
            self.uid,
            "champion",
            spec.template.spec.model,
            lambda at: force or (self.now - at).total_seconds() >= interval,
            lambda: self._read_champion(spec),
        )
        if seen.problem is not None:
            problems.append(seen.problem)
            return
        before = (self.old.get("champion") or {}).get("version")
        self.status["champion"] = seen.value
        after = (seen.value or {}).get("version")
        if after is not None and after != before:
            was = f" (was version {before})" if before else ""
            text = f"champion of {seen.source} is version {after}{was}"
            self.events.append((CHAMPION_CHANGED, text, False))

    def _read_champion(self, spec: ContinuousTrainingSpec) -> Seen:
        storage = storage_settings(spec.template.spec.storage, self.config)
        model = spec.template.spec.model
        try:
            s3 = self.memory.client(storage, self.config)
            registry = Registry(s3, storage["bucket"], storage["prefix"])
            version = registry.champion(model)
            if version is None:
                return Seen(self.now, model, None)
            metrics = registry.metadata(model, version).metrics
        except (RegistryError, ClientError, BotoCoreError) as error:
            problem = build.Problem(Reason.STORAGE_ERROR, f"model registry: {error}")
            return Seen(self.now, model, None, problem)
        champion = {"version": version, "metrics": {k: float(v) for k, v in metrics.items()}}
        return Seen(self.now, model, champion)

    # --- acting ----------------------------------------------------------------------------

    def _start(self, spec: ContinuousTrainingSpec, message: str, replacing: str | None) -> None:
        taken = {r.name for r in self.runs} | {self.old.get("lastRun") or "", replacing or ""}
        run = build.run_name(self.name, self.now, taken)
        self.status["activeRun"] = run
        self._finish(creating=True, post=False)  # the intent, recorded before the run exists
        if replacing:
            self._delete(replacing, f"replaced by {run}")
            self.events.append(
                (
                    RUN_REPLACED,
                    f"deleted active run {replacing} to start {run} (concurrencyPolicy Replace)",
                    False,
                )
            )
        if self._create(spec, run, self.status["lastTriggered"]):
            self.events.append((Reason.TRIGGERED, f"started run {run}: {message}", False))

    def _create(self, spec: ContinuousTrainingSpec, run: str, triggered: dict[str, Any]) -> bool:
        manifest = build.build_run(
            self.body,
            spec.template.to_wire(),
            run,
            reason=str(triggered.get("reason") or "Manual"),
            detail=str(triggered.get("detail") or ""),
            triggered_at=str(triggered.get("time") or format_time(self.now)),
        )
        try:
            created = self.kube.create(self._create_call, self.ns, manifest)
        except ApiException as error:
            if error.status not in (400, 422):
                raise  # retried on the next pass: the intent stays in status
            message = f"run {run} could not be created: {error.reason}: {error.body}"[:1000]
            self.status["activeRun"] = None
            self.events.append((Reason.INVALID_SPEC, message, True))
            return False
        verb = "created" if created else "found existing"
        log.info("continuoustraining %s/%s: %s run %s", self.ns, self.name, verb, run)
        return True

    def _create_call(self, namespace: str, body: dict[str, Any]) -> Any:
        return self.kube.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, RUNS, body
        )

    def _delete(self, run: str, why: str) -> None:
        """Delete a run; its Job and pods follow by garbage collection. Gone already is fine."""
        try:
            self.kube.custom.delete_namespaced_custom_object(
                GROUP, VERSION, self.ns, RUNS, run, propagation_policy="Background"
            )
        except ApiException as error:
            if error.status != 404:
                raise
            return
        log.info("continuoustraining %s/%s: deleted run %s (%s)", self.ns, self.name, run, why)

    # --- status ----------------------------------------------------------------------------

    def _finish(self, *, creating: bool = False, post: bool = True) -> None:
        """Write the status if it changed, then post the pass's Events."""
        spec_suspend = (self.body.get("spec") or {}).get("suspend")
        status = build.summarize(
            self.status,
            generation=self.body["metadata"].get("generation", 1),
            suspended=self.spec.suspend if self.spec is not None else bool(spec_suspend),
            problem=self.problem,
            creating=creating,
            outcome_text=build.last_outcome(self.status, self.runs),
            at=format_time(self.now),
        )
        clean = {k: v for k, v in status.items() if v is not None}  # None: remove the field
        self.kube.patch_status(PLURAL, {**self.body, "status": self.written}, clean)
        self.written = clean
        self.status = dict(clean)
        if post:
            self._post(clean)

    def _post(self, status: dict[str, Any]) -> None:
        before, after = self.old.get("phase"), status["phase"]
        if after != before and after == "Suspended":
            self.events.append((Reason.SUSPENDED, "suspended: no new run starts", False))
        elif after != before and before == "Suspended":
            self.events.append((RESUMED, "resumed: triggers start runs again", False))
        for condition in changed_conditions(self.old.get("conditions"), status["conditions"]):
            problem = condition["reason"] in build.PROBLEM_REASONS
            if condition["type"] == ConditionType.READY and problem:
                self.events.append((condition["reason"], condition["message"], True))
        for reason, message, warning in self.events:
            self.kube.event(self.body, str(reason), message, warning=warning)
        self.events = []
