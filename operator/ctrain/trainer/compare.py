"""The comparison with the champion, and the verdict: blessed, promoted, and why.

Fairness. The champion's recorded metrics came from another holdout (maybe other data),
so they are never compared. The champion is loaded from the registry and scored on the
challenger's holdout rows, with its own feature list and kinds, but only on the rows it
never trained on: its own recorded split (`ctrain.trainer.split`, a hash of each row's
content) is recomputed for every holdout row, and rows it would have put in its training
data are left out and counted (``excludedRows``). ``championSeenRows`` is then recounted
on the rows kept, by recomputing the champion's split on them alone: it must be 0, and a
comparison where it is not is refused. A champion whose split cannot be recomputed (a
random split from an older version, or a hashed column the data no longer has) leaves no
row that is guaranteed unseen.

Comparability. The champion is *not comparable* when it predicts another target or task,
when the data lacks one of its features, when no holdout row is guaranteed unseen by it,
or when it cannot be loaded or scored (corrupt, untrusted, fails on the data). Classes it
never saw do not make it incomparable: it is scored on today's rows like any model. A
not comparable champion blocks blessing (``onIncomparableChampion: Block``, the default)
or, with ``GatesOnly``, the challenger is judged on its gates alone.

Beating it (`ctrain.trainer.statistics`): on the key metric, in the metric's better
direction, ``delta`` must be positive and at least ``minImprovement``; with
``evaluation.significance`` its p-value must also be below ``alpha``. A tie keeps the
champion (no churn for nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ctrain.api import Comparison, ComparisonVerdict, EvaluationSpec, Metric, Reason, Task
from ctrain.api.common import shown_names
from ctrain.api.contracts import BaselineResult, ModelMetadata
from ctrain.registry import Registry, RegistryError, StorageUnavailable
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.evaluate import DIGITS, PROBA_METRICS, compute_metrics, target_values
from ctrain.trainer.features import NUMERIC, to_matrix
from ctrain.trainer.split import HashSplit
from ctrain.trainer.statistics import Predictions, Test, paired_comparison

__all__ = [
    "Challenger",
    "Judged",
    "Verdict",
    "compare_with_champion",
    "comparison_verdict",
    "judge",
    "no_champion",
]

_TOLERANCE = 1e-9

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Challenger:
    """The fitted challenger and the holdout it is judged on."""

    pipeline: Any
    kinds: Mapping[str, str]
    holdout: pd.DataFrame
    target: str
    task: Task
    metrics: Sequence[Metric]
    key_metric: Metric


@dataclass(frozen=True)
class Judged:
    """A comparison and, when the champion was scored, its metrics on the compared rows."""

    comparison: Comparison
    champion_metrics: dict[str, float]

    def baseline(self) -> BaselineResult | None:
        """The older `baseline` field of status and metadata.json."""
        comparison = self.comparison
        if comparison.verdict == ComparisonVerdict.NO_CHAMPION:
            return None
        version = comparison.champion_version or "unknown"
        if comparison.verdict == ComparisonVerdict.NOT_COMPARABLE:
            return BaselineResult(
                version=version, metrics={}, comparable=False, note=comparison.reason
            )
        return BaselineResult(version=version, metrics=dict(self.champion_metrics))


def no_champion() -> Judged:
    return Judged(Comparison(verdict=ComparisonVerdict.NO_CHAMPION, reason="no champion yet"), {})


def compare_with_champion(
    registry: Registry,
    model: str,
    version: str,
    challenger: Challenger,
    evaluation: EvaluationSpec,
) -> Judged:
    """Score champion ``version`` against the challenger on rows neither trained on."""

    def incomparable(reason: str, *, excluded_rows: int | None = None) -> Judged:
        log.warning("champion v%s not comparable: %s", version, reason)
        comparison = Comparison(
            champion_version=version,
            excluded_rows=excluded_rows,
            verdict=ComparisonVerdict.NOT_COMPARABLE,
            reason=f"champion v{version} not comparable: {reason}",
        )
        return Judged(comparison, {})

    try:
        metadata = registry.metadata(model, version)
    except StorageUnavailable as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"reading the champion: {exc}") from exc
    except RegistryError as exc:
        return incomparable(str(exc))
    problem = _incompatibility(metadata, challenger)
    if problem:
        return incomparable(problem)

    holdout = challenger.holdout
    split = HashSplit.from_record(metadata.split)
    if split is None:
        return incomparable(
            "its split was random (no content-hash split recorded), so no holdout row is "
            "guaranteed unseen by it",
            excluded_rows=len(holdout),
        )
    missing = split.missing_columns(holdout)
    if missing:
        return incomparable(
            f"its split hashed columns the data no longer has ({shown_names(missing)})",
            excluded_rows=len(holdout),
        )
    unseen = split.held_out(holdout)
    compared = holdout[unseen]
    excluded = int((~unseen).sum())
    if compared.empty:
        return incomparable(
            f"all {len(holdout)} holdout rows were in its training split", excluded_rows=excluded
        )
    seen = int((~split.held_out(compared)).sum())  # recomputed on the kept rows alone
    if seen:
        return incomparable(
            f"{seen} compared rows were in its training split", excluded_rows=excluded
        )

    try:
        champion = registry.load_model(model, version)
    except StorageUnavailable as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"loading champion v{version}: {exc}") from exc
    except RegistryError as exc:
        return incomparable(f"cannot be loaded: {exc}", excluded_rows=excluded)

    key = challenger.key_metric
    y_true = target_values(compared[challenger.target], challenger.task)
    ours_matrix = to_matrix(compared, challenger.kinds)
    features = list(metadata.features or [])
    theirs_kinds = {name: (metadata.feature_types or {}).get(name, NUMERIC) for name in features}
    usable = [
        m
        for m in challenger.metrics
        if m not in PROBA_METRICS or hasattr(champion, "predict_proba")
    ]
    try:
        theirs_matrix = to_matrix(compared, theirs_kinds)
        champion_scores = compute_metrics(champion, theirs_matrix, y_true, usable)
        theirs = _predictions(champion, theirs_matrix, key)
    except Exception as exc:  # noqa: BLE001 - classified: a champion failing on today's data
        return incomparable(f"cannot be scored: {exc}", excluded_rows=excluded)
    if key.value not in champion_scores:
        return incomparable(f"cannot compute {key.value}", excluded_rows=excluded)
    challenger_scores = compute_metrics(challenger.pipeline, ours_matrix, y_true, [key])
    test: Test | None = None
    significance = evaluation.significance
    if significance is not None and significance.test != "None":
        test = "McNemar" if significance.test == "McNemar" else "PairedBootstrap"
    try:
        paired = paired_comparison(
            key,
            y_true,
            _predictions(challenger.pipeline, ours_matrix, key),
            theirs,
            seed=evaluation.seed,
            test=test,
        )
    except ValueError as exc:
        return incomparable(f"cannot be compared: {exc}", excluded_rows=excluded)

    verdict, reason, significant = comparison_verdict(
        paired.delta,
        paired.p_value,
        evaluation,
        version,
        scores=(key.value, challenger_scores[key.value], champion_scores[key.value]),
    )
    comparison = Comparison(
        champion_version=version,
        holdout_rows=len(compared),
        champion_seen_rows=seen,
        excluded_rows=excluded,
        challenger={key.value: challenger_scores[key.value]},
        champion={key.value: champion_scores[key.value]},
        delta=round(paired.delta, DIGITS),
        confidence_interval=(
            None if paired.interval is None else [round(v, DIGITS) for v in paired.interval]
        ),
        p_value=None if paired.p_value is None else round(paired.p_value, DIGITS),
        test=paired.test,
        significant=significant,
        verdict=verdict,
        reason=reason,
    )
    return Judged(comparison, champion_scores)


def _predictions(model: Any, matrix: np.ndarray, key: Metric) -> Predictions:
    predicted = np.asarray(model.predict(matrix))
    if key not in PROBA_METRICS:
        return Predictions(predicted)
    return Predictions(predicted, np.asarray(model.predict_proba(matrix)), model.classes_)


def comparison_verdict(
    delta: float,
    p_value: float | None,
    evaluation: EvaluationSpec,
    version: str,
    *,
    scores: tuple[str, float, float] | None = None,
) -> tuple[ComparisonVerdict, str, bool | None]:
    """Better or NotBetter, why, and (when significance is required) whether it was.

    ``scores`` is (key metric, challenger's value, champion's value), for the sentence.
    """
    minimum = evaluation.min_improvement
    champion = f"champion v{version}"
    both = beats = fails = champion
    if scores is not None:
        name, ours, theirs = scores
        both = f"{name} {ours:.4f} vs {champion} {theirs:.4f}"
        beats = f"{name} {ours:.4f} beats {champion} {theirs:.4f}"
        fails = f"{name} {ours:.4f} does not beat {champion} {theirs:.4f}"
    if delta <= _TOLERANCE or delta < minimum - _TOLERANCE:
        return (
            ComparisonVerdict.NOT_BETTER,
            f"{fails}: delta {delta:+.4f} is not a gain of at least minImprovement {minimum}",
            None,
        )
    significance = evaluation.significance
    if significance is None or significance.test == "None":
        return ComparisonVerdict.BETTER, f"{beats}: delta {delta:+.4f}", None
    significant = p_value is not None and p_value < significance.alpha
    shown = "unknown" if p_value is None else f"{p_value:.4g}"
    if not significant:
        return (
            ComparisonVerdict.NOT_BETTER,
            f"{both}: delta {delta:+.4f} is not significant (p {shown}, alpha "
            f"{significance.alpha})",
            False,
        )
    return (
        ComparisonVerdict.BETTER,
        f"{beats}: delta {delta:+.4f}, significant (p {shown} < alpha {significance.alpha})",
        True,
    )


def _incompatibility(metadata: ModelMetadata, challenger: Challenger) -> str:
    if metadata.task != challenger.task.value:
        return f"task {metadata.task} differs from {challenger.task.value}"
    if metadata.target != challenger.target:
        return f"target {metadata.target} differs from {challenger.target}"
    missing = [name for name in metadata.features or [] if name not in challenger.holdout]
    if missing:
        return f"features missing from the data: {shown_names(missing)}"
    return ""


@dataclass(frozen=True)
class Verdict:
    """Whether the candidate is blessed and should be promoted, with a one-line reason."""

    blessed: bool
    promote: bool
    decision: str  # as status says it, once the promotion happened
    reason: Reason  # the Blessed condition's reason
    recorded: str = ""  # as metadata.json says it, before the promotion

    @property
    def before_promotion(self) -> str:
        return self.recorded or self.decision


def judge(
    scores: Mapping[str, float],
    gates: Sequence[Mapping[str, Any]],
    judged: Judged | None,
    *,
    key_metric: Metric,
    evaluation: EvaluationSpec,
    promote: bool,
) -> Verdict:
    """Bless and promote per the rules in the module docstring; explain in one line.

    ``judged`` is None with ``baseline: none``.
    """
    name = key_metric.value
    failed = [gate for gate in gates if not gate["passed"]]
    if failed:
        text = "not blessed: " + "; ".join(_gate_text(g) for g in failed)
        return Verdict(False, False, text, Reason.GATES_FAILED)

    comparison = None if judged is None else judged.comparison
    verdict = None if comparison is None else comparison.verdict
    reason = Reason.GATES_PASSED
    if comparison is None or verdict == ComparisonVerdict.NO_CHAMPION:
        text, reason = f"no champion to beat ({name} {scores[name]:.4f})", Reason.NO_BASELINE
    elif verdict == ComparisonVerdict.NOT_COMPARABLE:
        if evaluation.on_incomparable_champion != "GatesOnly":
            return Verdict(
                False,
                False,
                f"not blessed: {comparison.reason} (onIncomparableChampion: Block)",
                Reason.CHAMPION_NOT_COMPARABLE,
            )
        text = f"{comparison.reason}; passed every gate (onIncomparableChampion: GatesOnly)"
    elif verdict == ComparisonVerdict.NOT_BETTER:
        why = Reason.NOT_SIGNIFICANT if comparison.significant is False else None
        return Verdict(
            False,
            False,
            f"kept champion v{comparison.champion_version}: {comparison.reason}",
            why or Reason.BASELINE_NOT_BEATEN,
        )
    else:
        text = f"{comparison.reason} on {comparison.holdout_rows} unseen rows"
    if promote:
        return Verdict(True, True, f"promoted: {text}", reason, f"blessed: {text}")
    return Verdict(True, False, f"blessed, not promoted (promote is false): {text}", reason)


def _gate_text(gate: Mapping[str, Any]) -> str:
    bounds = []
    if gate.get("min") is not None:
        bounds.append(f">= {gate['min']}")
    if gate.get("max") is not None:
        bounds.append(f"<= {gate['max']}")
    return f"gate {gate['metric']} {' and '.join(bounds)} failed ({gate['value']:.4f})"
