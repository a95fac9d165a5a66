"""Reconcile one ContinuousTraining: observe the triggers, start runs, follow them, report.

One pass reads the loop and its runs (TrainingJobs) from the runtime's caches, the drift
of the named ModelDeployment (which it follows: a change of that ModelDeployment enqueues
the loop), and the dataset's fingerprint and the champion from the storage watch (which
enqueues the loop when either changes); `decide` (pure, `triggers`) says what to do; this
module does it and writes status. A new run is first recorded in status (`activeRun`,
Running=True reason Triggered) and only then created, so a crash in between recreates
that same run on the next pass. Events are posted on transitions only: a trigger, a skip,
a replacement, a run's outcome, a champion change, a new problem. A pass is due again at
the next cron slot or when a drift cooldown ends; everything else arrives as an event.

Decisions that would be wrong on a cold cache (the active run seems deleted, the
ModelDeployment seems missing) are confirmed with a live read first.
"""

import logging
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ctrain.api import (
    ConditionType,
    ContinuousTrainingSpec,
    ContinuousTrainingStatus,
    Reason,
)
from ctrain.api.common import format_time, validation_message
from ctrain.controller import health
from ctrain.controller.conditions import changed_conditions
from ctrain.controller.continuoustraining import builders as build
from ctrain.controller.continuoustraining import performance
from ctrain.controller.continuoustraining.triggers import (
    TRIGGER_ANNOTATION,
    Action,
    InvalidTrigger,
    Observations,
    decide,
    next_slot,
)
from ctrain.controller.kube import CONTINUOUSTRAININGS, MODELDEPLOYMENTS, TRAININGJOBS, Invalid
from ctrain.controller.names import label_value
from ctrain.controller.runtime.context import Context, Rejected
from ctrain.controller.runtime.engine import Kind
from ctrain.controller.runtime.owners import controlled_by
from ctrain.controller.runtime.status import Event, post_events, serialise, write_status
from ctrain.controller.runtime.store import ObjectRef
from ctrain.controller.storage.clients import location
from ctrain.controller.storage.facts import DatasetFact, Fact, ModelFact, Reading, Resolved

__all__ = ["CHAMPION_CHANGED", "KIND", "RESUMED", "RUN_DELETED", "RUN_REPLACED", "reconcile"]

log = logging.getLogger("ctrain.operator")
Body = dict[str, Any]
# How often a dataset is fingerprinted for schedule and drift triggers without onNewData.
DATA_POLL_SECONDS = 300.0
# Event reasons beyond ctrain.api.Reason (which names condition reasons).
RUN_REPLACED, RUN_DELETED = "RunReplaced", "RunDeleted"
CHAMPION_CHANGED, RESUMED = "ChampionChanged", "Resumed"


def reconcile(context: Context, body: Body) -> float | None:
    return _Pass(context, body).run()


def reject(context: Context, body: Body, rejected: Rejected) -> None:
    """A refused spec (or run) is the loop's problem, shown like any other."""
    loop = _Pass(context, body)
    loop.runs = loop.cached_runs()
    loop.problem = build.Problem(rejected.reason, rejected.message)
    loop.finish()


class _Pass:
    """One reconcile of one loop: `status` is what it will write, `events` what it will post."""

    def __init__(self, context: Context, body: Body) -> None:
        self.context, self.body = context, body
        self.now: datetime = context.clock()
        meta = body["metadata"]
        self.ns, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.ref = ObjectRef("ContinuousTraining", self.ns, self.name)
        self.old = ContinuousTrainingStatus.parse(body.get("status") or {})
        self.status = self.old.model_copy(deep=True)
        self.events: list[Event] = []
        self.problem: build.Problem | None = None
        self.spec: ContinuousTrainingSpec | None = None
        self.runs: list[build.Run] = []

    def run(self) -> float | None:
        self.runs = self.cached_runs()
        tracking = build.track(self.old, self.runs)
        if tracking.vanished:
            # The cache may not have seen the run yet: ask before calling it deleted.
            self.runs = self.live_runs()
            tracking = build.track(self.old, self.runs)
        self._follow(tracking)
        try:
            spec = self.spec = ContinuousTrainingSpec.parse(self.body.get("spec") or {})
        except ValidationError as error:
            self.problem = build.Problem(Reason.INVALID_SPEC, validation_message(error))
            self.finish()
            return None
        problems: list[build.Problem] = []
        seen = self._observe(spec, tracking, problems)
        self.problem = problems[0] if problems else None
        try:
            decision = decide(spec, self.old, seen, self.now)
        except InvalidTrigger as error:
            self.problem = build.Problem(Reason.INVALID_SPEC, str(error))
            self.finish()
            return None
        if tracking.create_pending and self.status.active_run:
            self._create(spec, self.status.active_run, _triggered(self.status))
        if decision.updates:
            self.status = _updated(self.status, decision.updates)
        if decision.action in (Action.START, Action.REPLACE):
            replacing = tracking.active if decision.action == Action.REPLACE else None
            self._start(spec, decision.message, replacing)
        elif decision.action == Action.SKIP:
            self.events.append((Reason.CONCURRENCY_FORBIDDEN, decision.message, False))
        elif decision.action == Action.QUEUE:
            self.events.append((Reason.RUN_QUEUED, decision.message, False))
        elif decision.action == Action.NO_NEW_DATA:
            self.events.append((Reason.NO_NEW_DATA, decision.message, False))
        if spec.concurrency_policy == "Replace":
            for stale in tracking.others:
                self._delete(stale, "replaced")
        self.finish()
        limits = (spec.successful_runs_history_limit, spec.failed_runs_history_limit)
        for doomed in build.runs_to_prune(self.runs, *limits):
            self._delete(doomed, "history limit")
        return self._next_look(spec)

    # --- runs ------------------------------------------------------------------------------

    def cached_runs(self) -> list[build.Run]:
        return build.owned_runs(self.context.store(TRAININGJOBS).owned_by(self.ref), self.uid)

    def live_runs(self) -> list[build.Run]:
        selector = f"{build.CONTINUOUS_LABEL}={label_value(self.name)}"
        bodies = self.context.kube.list(TRAININGJOBS, self.ns, labels=selector)
        for body in bodies:
            self.context.remember(TRAININGJOBS, body)
        return build.owned_runs(bodies, self.uid)

    def _follow(self, tracking: build.Tracking) -> None:
        self.status.active_run = tracking.active
        if tracking.finished is not None:
            run = tracking.finished
            decision = build.outcome(run)
            self.status = _updated(
                self.status,
                {"lastRun": run.name, "lastRunPhase": run.phase, "lastDecision": decision},
            )
            succeeded = run.phase == "Succeeded"
            reason = Reason.RUN_SUCCEEDED if succeeded else Reason.RUN_FAILED
            self.events.append((reason, decision, not succeeded))
        if tracking.vanished:
            message = f"run {tracking.vanished} failed: it was deleted before it finished"
            self.status = _updated(
                self.status,
                {"lastRun": tracking.vanished, "lastRunPhase": "Failed", "message": message},
            )
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
        watched = set()
        if triggers.on_drift is not None:
            deployment = triggers.on_drift.deployment
            watched.add(ObjectRef("ModelDeployment", self.ns, deployment))
            fields.update(self._drift(deployment, problems))
        if triggers.on_performance is not None:
            deployment = triggers.on_performance.deployment
            watched.add(ObjectRef("ModelDeployment", self.ns, deployment))
            md = self._deployment(deployment, "onPerformance", problems)
            if md is not None:
                status = md.get("status") or {}
                fields["degradation"] = performance.degradation(deployment, status)
        self.context.relations.follow(self.ref, watched)

        template = spec.template.spec
        champion = ModelFact(
            location(template.storage, self.context.config), template.model, "champion"
        )
        wanted: dict[Fact, float] = {champion: self.context.config.registry_poll_seconds}
        uri = template.dataset.uri
        dataset: DatasetFact | None = None
        # Every trigger but a manual one needs the data's fingerprint: new data to see a
        # change, schedule and drift to skip data trained on already (NoNewData).
        polled = bool(triggers.on_new_data or triggers.schedule or triggers.on_drift)
        interval = float(
            (triggers.on_new_data.poll_interval_seconds if triggers.on_new_data else None)
            or DATA_POLL_SECONDS
        )
        if polled and uri.startswith("s3://"):
            dataset = DatasetFact(location(template.storage, self.context.config).endpoint, uri)
            wanted[dataset] = interval
        labels = None
        if polled:  # new labelled production rows are new data too (dataset.feedback)
            labels = performance.labels_fact(template, self.context.config)
            if labels is not None:
                wanted[labels] = interval
        readings = self.context.storage.follow(self.ref, wanted)
        if polled:
            if dataset is None:
                fields["data_fingerprint"] = uri  # a toy set never changes
            elif (data := readings[dataset]) is not None:
                fields["data_fingerprint"] = data.value if isinstance(data.value, str) else None
                if data.failure is not None:
                    problems.append(build.Problem(data.failure.reason, data.failure.message))
            else:
                fields["data_unread"] = True
            if labels is not None and fields.get("data_fingerprint") is not None:
                identity = performance.with_labels(
                    fields["data_fingerprint"], readings[labels], problems
                )
                fields["data_fingerprint"] = identity
                if identity is None:  # the labels are not read yet: undecided, not "same"
                    fields["data_unread"] = True
        reading = readings[champion]
        if tracking.finished is not None:
            # The run that just finished may have moved the champion: read it now.
            reading = self.context.storage.read_now(champion)
        self._champion(template.model, reading, problems)
        return Observations(**fields)

    def _deployment(
        self, deployment: str, trigger: str, problems: list[build.Problem]
    ) -> Body | None:
        md = self.context.store(MODELDEPLOYMENTS).get(self.ns, deployment)
        if md is None:
            md = self.context.remember(
                MODELDEPLOYMENTS, self.context.kube.get(MODELDEPLOYMENTS, self.ns, deployment)
            )
        if md is None:
            problems.append(
                build.Problem(
                    Reason.DEPLOYMENT_NOT_FOUND,
                    f"spec.triggers.{trigger}.deployment: ModelDeployment {deployment} does "
                    f"not exist in namespace {self.ns}",
                )
            )
        return md

    def _drift(self, deployment: str, problems: list[build.Problem]) -> dict[str, Any]:
        md = self._deployment(deployment, "onDrift", problems)
        if md is None:
            return {}
        drift = (md.get("status") or {}).get("drift") or {}
        score = drift.get("score")
        scored = f" (score {score:.4f})" if isinstance(score, int | float) else ""
        detail = f"ModelDeployment {deployment} reports drift{scored}"
        detected = drift.get("detected")
        return {
            "drift_detected": detected if isinstance(detected, bool) else None,
            "drift_detail": detail,
            "drift_version": (md.get("status") or {}).get("currentVersion"),
        }

    def _champion(self, model: str, reading: Reading | None, problems: list[build.Problem]) -> None:
        if reading is None:
            return  # not read yet: the storage watch enqueues the loop when it is
        if reading.failure is not None:
            if reading.failure.reason == Reason.VERSION_NOT_FOUND:
                return  # no champion yet
            problems.append(
                build.Problem(Reason.STORAGE_ERROR, f"model registry: {reading.failure.message}")
            )
            return
        if not isinstance(reading.value, Resolved):
            return
        before = self.old.champion.version if self.old.champion else None
        self.status = _updated(
            self.status,
            {
                "champion": {
                    "version": reading.value.version,
                    "metrics": dict(reading.value.metrics),
                }
            },
        )
        after = reading.value.version
        if after != before:
            was = f" (was version {before})" if before else ""
            text = f"champion of {model} is version {after}{was}"
            self.events.append((CHAMPION_CHANGED, text, False))

    # --- acting ----------------------------------------------------------------------------

    def _start(self, spec: ContinuousTrainingSpec, message: str, replacing: str | None) -> None:
        taken = {r.name for r in self.runs} | {self.old.last_run or "", replacing or ""}
        run = build.run_name(self.name, self.now, taken)
        self.status.active_run = run
        self.finish(creating=True, post=False)  # the intent, recorded before the run exists
        if replacing:
            self._delete(replacing, f"replaced by {run}")
            self.events.append(
                (
                    RUN_REPLACED,
                    f"deleted active run {replacing} to start {run} (concurrencyPolicy Replace)",
                    False,
                )
            )
        if self._create(spec, run, _triggered(self.status)):
            self.events.append((Reason.TRIGGERED, f"started run {run}: {message}", False))

    def _create(self, spec: ContinuousTrainingSpec, run: str, triggered: dict[str, str]) -> bool:
        manifest = build.build_run(
            self.body,
            spec.template.to_wire(),
            run,
            reason=triggered.get("reason") or "Manual",
            detail=triggered.get("detail") or "",
            triggered_at=triggered.get("time") or format_time(self.now),
        )
        try:
            created = self.context.kube.create(TRAININGJOBS, manifest)
        except Invalid as error:
            message = f"run {run} could not be created: {error.message}"[:1000]
            self.status.active_run = None
            self.events.append((Reason.INVALID_SPEC, message, True))
            return False
        self.context.remember(TRAININGJOBS, created)
        verb = "created" if created is not None else "found existing"
        log.info("continuoustraining %s/%s: %s run %s", self.ns, self.name, verb, run)
        return True

    def _delete(self, run: str, why: str) -> None:
        """Delete a run; its Job and pods follow by garbage collection. Gone already is fine."""
        if self.context.kube.delete(TRAININGJOBS, self.ns, run):
            log.info("continuoustraining %s/%s: deleted run %s (%s)", self.ns, self.name, run, why)

    # --- status ----------------------------------------------------------------------------

    def finish(self, *, creating: bool = False, post: bool = True) -> None:
        """Write the status if it changed, then post the pass's Events."""
        spec_suspend = (self.body.get("spec") or {}).get("suspend")
        suspended = self.spec.suspend if self.spec is not None else bool(spec_suspend)
        status = build.summarize(
            self.status,
            generation=self.body["metadata"].get("generation", 1),
            suspended=suspended,
            problem=self.problem,
            creating=creating,
            outcome_text=build.last_outcome(self.status, self.runs),
            at=self.now,
        )
        status = health.continuoustraining(status, suspended=suspended, at=self.now)
        written = write_status(self.context, CONTINUOUSTRAININGS, self.body, status)
        if written is not None:
            self.body = written
        self.status = status.model_copy(deep=True)
        if post:
            self._post(status)

    def _post(self, status: ContinuousTrainingStatus) -> None:
        before, after = self.old.phase, status.phase
        if after != before and after == "Suspended":
            self.events.append((Reason.SUSPENDED, "suspended: no new run starts", False))
        elif after != before and before == "Suspended":
            self.events.append((RESUMED, "resumed: triggers start runs again", False))
        for condition in changed_conditions(self.old.conditions, status.conditions):
            problem = condition.reason in build.PROBLEM_REASONS
            if condition.type == ConditionType.READY and problem:
                self.events.append((condition.reason, condition.message, True))
        post_events(self.context, self.body, self.events)
        self.events = []

    def _next_look(self, spec: ContinuousTrainingSpec) -> float | None:
        """Seconds until time alone can make a trigger fire: the next cron slot, the end of
        a drift cooldown. Everything else (annotations, runs, data, drift) is an event."""
        if spec.suspend:
            return None
        waits: list[float] = []
        triggers = spec.triggers
        if triggers.schedule:
            slot = next_slot(triggers.schedule, triggers.time_zone, self.now)
            waits.append((slot - self.now).total_seconds())
        drift = triggers.on_drift
        last = self.status.last_drift_trigger_time
        if drift is not None and last is not None:
            cooldown = (last - self.now).total_seconds() + drift.cooldown_seconds
            if cooldown > 0:
                waits.append(cooldown)
        degraded = triggers.on_performance
        if degraded is not None:
            left = performance.wait_seconds(
                degraded, self.status.last_performance_trigger_time, self.now
            )
            if left > 0:
                waits.append(left)
        # A second late rather than early: a slot is only due once its time has passed.
        return min(waits) + 1.0 if waits else None


def _updated(status: ContinuousTrainingStatus, fields: dict[str, Any]) -> ContinuousTrainingStatus:
    """`status` with camelCase wire `fields` set (None removes a field)."""
    return ContinuousTrainingStatus.parse({**serialise(status), **fields})


def _triggered(status: ContinuousTrainingStatus) -> dict[str, str]:
    last = status.last_triggered
    if last is None:
        return {}
    return {key: value for key, value in (last.to_wire() or {}).items() if isinstance(value, str)}


KIND = Kind(
    resource=CONTINUOUSTRAININGS,
    reconcile=reconcile,
    reject=reject,
    workers=2,
    children={TRAININGJOBS: controlled_by("ContinuousTraining")},
)
