"""One training run, end to end: the body of `ctrain train`.

parse spec → build estimator → claim this TrainingJob's version (or report the one an
earlier attempt published) → load data → validate → split by content hash → fit →
evaluate (gates, the champion on holdout rows it never saw) → publish → promote with a
compare-and-set if blessed (`ctrain.trainer.register`).

The order puts the cheap checks of the spec (estimator, parameters, metrics) before
reading any data. `run` never raises: every outcome is a termination payload and an
exit code (0 success; failures by class, `ctrain.trainer.errors`), failures carrying a
reason from docs/contracts.md.
"""

from __future__ import annotations

import json
import logging
import uuid
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import pydantic
import skops.io
from sklearn.utils._param_validation import InvalidParameterError

from ctrain import __version__
from ctrain.api import EvaluationSpec, Metric, Reason, StorageSpec, Task, TrainingJobSpec
from ctrain.api.common import DEFAULT_BUCKET, DEFAULT_PREFIX, format_time, storage_location
from ctrain.api.contracts import (
    DatasetRecord,
    EstimatorRecord,
    ModelMetadata,
    TrainingFailed,
    TrainingSucceeded,
)
from ctrain.api.status import GateResult
from ctrain.registry import Registry, RegistryError, VersionNotFound
from ctrain.storage import S3Client
from ctrain.trainer.compare import (
    Challenger,
    Judged,
    Verdict,
    compare_with_champion,
    judge,
    no_champion,
)
from ctrain.trainer.data import load_dataset
from ctrain.trainer.errors import EXIT_RETRYABLE, TrainerError
from ctrain.trainer.estimators import build_estimator, build_pipeline
from ctrain.trainer.evaluate import PROBA_METRICS, compute_metrics, evaluate_gates, target_values
from ctrain.trainer.features import feature_kinds, to_matrix
from ctrain.trainer.reference import compute_reference
from ctrain.trainer.register import already_registered, promote
from ctrain.trainer.split import split_holdout
from ctrain.trainer.termination import failure
from ctrain.trainer.validation import validate

__all__ = ["TrainerContext", "parse_spec", "run", "train"]

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TrainerContext:
    """What a run needs from outside: S3, where the registry is, who asked, the clock.

    ``bucket``/``prefix`` are explicit overrides (``--bucket``); otherwise the spec's
    ``storage`` wins, then ``default_bucket``/``default_prefix`` (``CTRAIN_BUCKET``...).
    """

    client_factory: Callable[[StorageSpec | None], S3Client]
    bucket: str | None = None
    prefix: str | None = None
    default_bucket: str = DEFAULT_BUCKET
    default_prefix: str = DEFAULT_PREFIX
    training_job: Mapping[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = _utcnow

    def registry_location(self, storage: StorageSpec | None) -> tuple[str, str]:
        bucket, prefix = storage_location(
            storage, default_bucket=self.default_bucket, default_prefix=self.default_prefix
        )
        return self.bucket or bucket, prefix if self.prefix is None else self.prefix


def run(
    raw_spec: str | Mapping[str, Any], ctx: TrainerContext
) -> tuple[int, TrainingSucceeded | TrainingFailed]:
    """Run one training; return (exit code, termination payload). Never raises."""
    try:
        spec = parse_spec(raw_spec)
        return 0, train(spec, ctx)
    except TrainerError as exc:
        log.error("failed reason=%s message=%s", exc.reason.value, exc.message)
        return exc.exit_code, failure(exc.reason, exc.message)
    except Exception as exc:  # classified: anything unforeseen is a failed run, retried
        log.exception("failed reason=TrainingFailed (unexpected error)")
        message = f"unexpected {type(exc).__name__}: {exc}"
        return EXIT_RETRYABLE, failure(Reason.TRAINING_FAILED, message)


def parse_spec(raw_spec: str | Mapping[str, Any]) -> TrainingJobSpec:
    """Validate the TrainingJob spec; an estimator off the allowlist is UnknownEstimator."""
    try:
        data = json.loads(raw_spec) if isinstance(raw_spec, str) else raw_spec
    except ValueError as exc:
        raise TrainerError(Reason.INVALID_SPEC, f"the spec is not valid JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise TrainerError(Reason.INVALID_SPEC, "the spec must be a JSON object")
    try:
        return TrainingJobSpec.parse(data)
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'spec'}: {error['msg']}"
            for error in errors
        )
        unknown = any(tuple(error["loc"][:2]) == ("estimator", "type") for error in errors)
        reason = Reason.UNKNOWN_ESTIMATOR if unknown else Reason.INVALID_SPEC
        raise TrainerError(reason, f"invalid spec: {problems}") from exc


def train(spec: TrainingJobSpec, ctx: TrainerContext) -> TrainingSucceeded:
    """The run itself; raises TrainerError. Returns the success termination payload."""
    evaluation = spec.evaluation
    metrics, key = spec.effective_metrics(), spec.key_metric
    estimator, params = build_estimator(spec.estimator, seed=evaluation.seed)
    _check_metrics_supported(estimator, metrics, spec.estimator.type)
    try:
        s3 = ctx.client_factory(spec.storage)
    except ValueError as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"S3 client settings: {exc}") from exc
    registry = Registry(s3, *ctx.registry_location(spec.storage), clock=ctx.clock)
    job, uid = ctx.training_job, ctx.training_job.get("uid", "")
    who = "ctrain train"
    if job.get("name"):
        who = f"TrainingJob {job.get('namespace')}/{job.get('name')}"
    claimed = None
    if uid:  # one version per TrainingJob: an earlier attempt's version is reused
        claimed = _registry_call(lambda: registry.claim_for_job(spec.model, uid))
        if claimed.reused:
            earlier = already_registered(registry, spec, claimed.version, uid, who)
            if earlier is not None:
                return earlier

    dataset = load_dataset(spec.dataset, s3)
    frame, target = dataset.frame, spec.dataset.target_column
    features = list(spec.dataset.features) or [c for c in frame.columns if c != target]
    log.info("loaded uri=%s rows=%d fingerprint=%s", dataset.uri, dataset.rows, dataset.fingerprint)

    validate(frame, spec.dataset.expectations, target=target, features=features, task=spec.task)
    log.info("validated columns=%d features=%d", len(frame.columns), len(features))

    kinds = feature_kinds(frame, features, spec.dataset.expectations)
    holdout = split_holdout(
        frame, columns=[*features, target], test_size=evaluation.test_size, seed=evaluation.seed
    )
    pipeline = build_pipeline(estimator, kinds)
    train_matrix = to_matrix(holdout.train, kinds)  # also what reference.json describes
    _fit(pipeline, train_matrix, target_values(holdout.train[target], spec.task))
    log.info(
        "fitted estimator=%s train_rows=%d test_rows=%d split=%s",
        spec.estimator.type,
        len(holdout.train),
        len(holdout.test),
        holdout.split,
    )

    y_test = target_values(holdout.test[target], spec.task)
    scores = compute_metrics(pipeline, to_matrix(holdout.test, kinds), y_test, metrics)
    gates = evaluate_gates(scores, evaluation.gates)
    classes = _classes(pipeline, spec.task)
    challenger = Challenger(pipeline, kinds, holdout.test, target, spec.task, metrics, key)

    def compare() -> tuple[str | None, Judged | None]:
        if evaluation.baseline == "none":  # no comparison; promotion replaces any champion
            return _registry_call(lambda: registry.champion(spec.model)), None
        return _compare(registry, spec.model, challenger, evaluation)

    def rejudge(judged: Judged | None) -> Verdict:
        return judge(scores, gates, judged, key_metric=key, evaluation=evaluation,
                     promote=spec.promote)  # fmt: skip

    expected, judged = compare()
    verdict = rejudge(judged)
    log.info("evaluated metrics=%s decision=%r", json.dumps(scores), verdict.decision)

    gate_results = [GateResult.parse(gate) for gate in gates]
    metadata = ModelMetadata(
        created_at=format_time(ctx.clock()),
        task=spec.task.value,
        target=target,
        features=features,
        feature_types=dict(kinds),
        classes=classes,
        estimator=EstimatorRecord(type=spec.estimator.type, params=params),
        primary_metric=key.value,
        metrics=scores,
        gates=gate_results,
        baseline=None if judged is None else judged.baseline(),
        comparison=None if judged is None else judged.comparison,
        blessed=verdict.blessed,
        decision=verdict.before_promotion,
        dataset=DatasetRecord(uri=dataset.uri, fingerprint=dataset.fingerprint, rows=dataset.rows),
        split=holdout.record,
        package_version=__version__,
        training_job=dict(job),
    )
    owner = uid or f"{who} {uuid.uuid4().hex}"
    version = claimed.version if claimed else ""

    def publish() -> None:
        nonlocal version
        version = version or registry.reserve_version(spec.model, owner=owner)
        registry.publish(
            spec.model,
            version,
            skops.io.dumps(pipeline),
            metadata,
            compute_reference(holdout.train, kinds, train_matrix),
            owner=owner,
        )

    _registry_call(publish, lambda: f" (version {version})" if version else "")
    log.info("published version=%s uri=%s", version, registry.artifact_uri(spec.model, version))
    outcome = promote(
        registry,
        spec.model,
        version,
        expected=expected,
        verdict=verdict,
        judged=judged,
        by=who,
        recompare=compare,
        rejudge=rejudge,
    )
    final = outcome.judged
    return TrainingSucceeded(
        model=spec.model,
        version=version,
        artifact_uri=registry.artifact_uri(spec.model, version),
        task=spec.task.value,
        metrics=scores,
        key_metric=f"{key.value}={scores[key.value]:.4f}",
        baseline=None if final is None else final.baseline(),
        blessed=outcome.verdict.blessed,
        promoted=outcome.promoted,
        gates=gate_results,
        decision=outcome.decision,
        comparison=None if final is None else final.comparison,
        blessed_reason=outcome.verdict.reason.value,
        promotion_reason=outcome.reason.value,
        data_fingerprint=dataset.fingerprint,
        rows=dataset.rows,
    )


def _compare(
    registry: Registry, model: str, challenger: Challenger, evaluation: EvaluationSpec
) -> tuple[str | None, Judged]:
    """(the champion to expect when promoting, the comparison with the one not rejected)."""

    def read() -> tuple[str | None, str | None]:
        current = registry.champion(model)  # read first: a move after it fails the CAS
        try:
            return current, registry.resolve(model, "champion")
        except VersionNotFound:
            return current, None

    current, effective = _registry_call(read)
    if effective is None:
        return current, no_champion()
    return current, compare_with_champion(registry, model, effective, challenger, evaluation)


_T = TypeVar("_T")


def _registry_call(call: Callable[[], _T], where: Callable[[], str] = lambda: "") -> _T:
    try:
        return call()
    except RegistryError as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"model registry{where()}: {exc}") from exc


def _check_metrics_supported(estimator: Any, metrics: list[Metric], name: str) -> None:
    if not hasattr(estimator, "predict_proba"):
        needs = [metric.value for metric in metrics if metric in PROBA_METRICS]
        if needs:
            raise TrainerError(
                Reason.INVALID_SPEC,
                f"metrics {', '.join(needs)} need predict_proba, which {name} with these "
                "parameters does not provide",
            )


def _fit(pipeline: Any, matrix: Any, y: Any) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            pipeline.fit(matrix, y)
        except InvalidParameterError as exc:  # a parameter checked only against the data
            raise TrainerError(Reason.INVALID_PARAMS, f"fit rejected a parameter: {exc}") from exc
        except MemoryError:
            raise  # maybe not this data's fault: an unforeseen error, retried
        except Exception as exc:  # classified: the estimator rejected the data
            raise TrainerError(
                Reason.TRAINING_FAILED, f"fit failed: {type(exc).__name__}: {exc}"
            ) from exc
    for warning in {str(w.message) for w in caught}:
        log.warning("fit warning: %s", warning)


def _classes(pipeline: Any, task: Task) -> list[Any] | None:
    if task != Task.CLASSIFICATION:
        return None
    return [label.item() if hasattr(label, "item") else label for label in pipeline.classes_]
