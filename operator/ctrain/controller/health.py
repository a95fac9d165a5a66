"""The conditions tools read to judge health, derived in one place for every kind.

kstatus (Flux, cli-utils, `kubectl` plugins) reads `Reconciling` and `Stalled`, both
abnormal-true: `Reconciling=True` is InProgress, `Stalled=True` is Failed, neither True
falls back to `Ready`. A batch-style TrainingJob also ends with `Complete` or `Failed`, so
`kubectl wait --for=condition=Failed` returns the moment a run fails instead of waiting
for a `Ready` that never comes. Each kind's reconciler decides its phase and `Ready`;
these functions add the rest from them, so kstatus and the Argo CD health checks in
deploy/argocd/ (which read the same phases) cannot disagree with `Ready`.
"""

from datetime import datetime

from ctrain.api import (
    Condition,
    ConditionStatus,
    ConditionType,
    ContinuousTrainingStatus,
    ModelDeploymentPhase,
    ModelDeploymentStatus,
    Reason,
    TrainingJobPhase,
    TrainingJobStatus,
)
from ctrain.controller.conditions import get_condition, set_condition

__all__ = ["DERIVED", "continuoustraining", "modeldeployment", "set_kstatus", "trainingjob"]

# What these functions set: they restate the phase and Ready, so they earn no Event of
# their own.
DERIVED = frozenset(
    {
        ConditionType.RECONCILING,
        ConditionType.STALLED,
        ConditionType.COMPLETE,
        ConditionType.FAILED,
    }
)

Mark = tuple[str, str]  # reason, message


def set_kstatus(
    conditions: list[Condition],
    *,
    reconciling: Mark | None,
    stalled: Mark | None,
    generation: int | None,
    at: datetime | None,
) -> list[Condition]:
    """`Reconciling` and `Stalled`: at most one True; when neither is, both False with the
    reason `Reconciled` (kstatus then reads `Ready`)."""
    if reconciling is not None and stalled is not None:
        raise ValueError("an object cannot be both reconciling and stalled")
    done = (Reason.RECONCILED, "")
    if stalled is not None:
        values = ((False, (stalled[0], "the operator stopped: " + stalled[1])), (True, stalled))
    elif reconciling is not None:
        values = ((True, reconciling), (False, (Reason.RECONCILING, "progressing")))
    else:
        values = ((False, done), (False, done))
    for kind, (value, (reason, message)) in zip(
        (ConditionType.RECONCILING, ConditionType.STALLED), values, strict=True
    ):
        conditions = set_condition(conditions, kind, value, reason, message, generation, at)
    return conditions


def _ready(conditions: list[Condition]) -> Mark:
    ready = get_condition(conditions, ConditionType.READY)
    return (ready.reason, ready.message) if ready else (Reason.RECONCILING, "")


def trainingjob(status: TrainingJobStatus, at: datetime | None = None) -> TrainingJobStatus:
    """Pending/Running reconcile; Succeeded is `Complete`; Failed is `Failed` and `Stalled`
    (a finished run is never retried: its status is final)."""
    result = status.model_copy(deep=True)
    generation = result.observed_generation
    ready = _ready(result.conditions)
    conditions = result.conditions
    if result.phase == TrainingJobPhase.SUCCEEDED:
        conditions = set_condition(
            conditions, ConditionType.COMPLETE, True, Reason.TRAINING_SUCCEEDED,
            result.message or "", generation, at,
        )  # fmt: skip
        conditions = set_kstatus(
            conditions, reconciling=None, stalled=None, generation=generation, at=at
        )
    elif result.phase == TrainingJobPhase.FAILED:
        conditions = set_condition(
            conditions, ConditionType.FAILED, True, ready[0], ready[1], generation, at
        )
        conditions = set_kstatus(
            conditions, reconciling=None, stalled=ready, generation=generation, at=at
        )
    else:
        conditions = set_kstatus(
            conditions, reconciling=ready, stalled=None, generation=generation, at=at
        )
    result.conditions = conditions
    return result


def _true(conditions: list[Condition], kind: ConditionType) -> Condition | None:
    found = get_condition(conditions, kind)
    return found if found is not None and found.status == ConditionStatus.TRUE else None


def modeldeployment(
    status: ModelDeploymentStatus, at: datetime | None = None
) -> ModelDeploymentStatus:
    """Degraded (phase or condition) is `Stalled`, as the Argo CD check reads it; Pending
    and Progressing reconcile; Available is done."""
    result = status.model_copy(deep=True)
    degraded = _true(result.conditions, ConditionType.DEGRADED)
    reconciling: Mark | None = None
    stalled: Mark | None = None
    if degraded is not None:
        stalled = (degraded.reason, degraded.message)
    elif result.phase == ModelDeploymentPhase.DEGRADED:
        stalled = _ready(result.conditions)
    elif result.phase != ModelDeploymentPhase.AVAILABLE:
        progressing = _true(result.conditions, ConditionType.PROGRESSING)
        reconciling = (
            (progressing.reason, progressing.message) if progressing else _ready(result.conditions)
        )
    result.conditions = set_kstatus(
        result.conditions,
        reconciling=reconciling,
        stalled=stalled,
        generation=result.observed_generation,
        at=at,
    )
    return result


# Ready reasons of a loop that cannot do its work until someone acts (the Argo CD check's
# Degraded list); any other Ready=False is a waiting state.
CT_FAILURES = frozenset(
    {
        Reason.RUN_FAILED,
        Reason.INVALID_SPEC,
        Reason.STORAGE_ERROR,
        Reason.DATASET_NOT_FOUND,
        Reason.DATASET_UNREADABLE,
        Reason.DATA_VALIDATION_FAILED,
        Reason.UNKNOWN_ESTIMATOR,
        Reason.INVALID_PARAMS,
        Reason.TRAINING_FAILED,
        Reason.JOB_FAILED,
        Reason.DEADLINE_EXCEEDED,
        Reason.BACKOFF_LIMIT_EXCEEDED,
        Reason.NO_TERMINATION_MESSAGE,
        Reason.VERSION_NOT_FOUND,
    }
)


def continuoustraining(
    status: ContinuousTrainingStatus, *, suspended: bool, at: datetime | None = None
) -> ContinuousTrainingStatus:
    """A loop is not Ready before its model has a champion (nothing could be served yet):
    it is reconciling towards one. A broken loop is `Stalled`; a suspended one neither."""
    result = status.model_copy(deep=True)
    generation = result.observed_generation
    ready = get_condition(result.conditions, ConditionType.READY)
    has_champion = result.champion is not None and bool(result.champion.version)
    if ready is not None and ready.status == ConditionStatus.TRUE and not has_champion:
        reason = Reason.SUSPENDED if suspended else Reason.NO_CHAMPION
        if suspended:
            message = "no champion yet, and no run starts while suspended"
        elif result.active_run:
            message = f"no champion yet; run {result.active_run} is training"
        else:
            message = "no champion yet; waiting for a trigger to train one"
        result.conditions = set_condition(
            result.conditions, ConditionType.READY, False, reason, message, generation, at
        )
        ready = get_condition(result.conditions, ConditionType.READY)
    not_ready = ready is not None and ready.status != ConditionStatus.TRUE
    reconciling: Mark | None = None
    stalled: Mark | None = None
    if ready is not None and not_ready and ready.reason in CT_FAILURES:
        stalled = (ready.reason, ready.message)
    elif ready is not None and not_ready and not suspended:
        reconciling = (ready.reason, ready.message)
    result.conditions = set_kstatus(
        result.conditions,
        reconciling=reconciling,
        stalled=stalled,
        generation=generation,
        at=at,
    )
    return result
