"""The fair comparison with the champion, and the verdict: blessed, promoted, and why.

Fairness: the champion's recorded metrics came from another holdout (maybe other data),
so they are never compared. The champion is loaded from the registry and scored on the
SAME holdout rows as the candidate, with its own feature list and kinds.

Comparability rule. The champion is *not comparable* when it predicts a different
target or task, when the holdout lacks one of its features, when its classes differ
from the data's, or when it cannot be loaded or scored (corrupt, untrusted, fails on
the data). A non-comparable champion is recorded (version and why) and the candidate is
judged on its gates alone, as with ``baseline: none``: such a champion could not serve
today's data either, and the gates are the user's quality bar. A changed feature list
alone does not make it incomparable, as long as the data still has its features.

Beating the baseline: on the key metric (`TrainingJobSpec.key_metric`), in the metric's better
direction (lower for mae, mse, rmse, mape, log_loss), the improvement must be positive
and at least ``minImprovement``. A tie keeps the champion (no churn for nothing).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ctrain.api import Metric, Reason, Task, higher_is_better
from ctrain.api.contracts import BaselineResult, ModelMetadata
from ctrain.registry import Registry, RegistryError, StorageUnavailable
from ctrain.trainer.errors import TrainerError
from ctrain.trainer.evaluate import PROBA_METRICS, compute_metrics, target_values
from ctrain.trainer.features import NUMERIC, to_matrix

__all__ = ["Baseline", "Verdict", "judge", "score_champion"]

_TOLERANCE = 1e-9

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Baseline:
    """The champion the candidate was compared with, scored on the same holdout."""

    version: str
    metrics: dict[str, float] = field(default_factory=dict)
    comparable: bool = True
    note: str = ""

    def to_result(self) -> BaselineResult:
        """As the termination message and metadata.json record it."""
        if self.comparable:
            return BaselineResult(version=self.version, metrics=dict(self.metrics))
        return BaselineResult(
            version=self.version, metrics=dict(self.metrics), comparable=False, note=self.note
        )


@dataclass(frozen=True)
class Verdict:
    """Whether the candidate is blessed and should be promoted, with a one-line reason."""

    blessed: bool
    promote: bool
    decision: str


def score_champion(
    registry: Registry,
    model: str,
    test: pd.DataFrame,
    *,
    target: str,
    task: Task,
    metrics: Sequence[Metric],
    key_metric: Metric,
    classes: Sequence[Any] | None,
) -> Baseline | None:
    """Score the current champion on the holdout, or say why it cannot be; None if none."""
    version: str | None = None
    try:
        version = registry.champion(model)
        if version is None:
            return None
        metadata = registry.metadata(model, version)
    except StorageUnavailable as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"reading the champion: {exc}") from exc
    except RegistryError as exc:
        return Baseline("unknown" if version is None else version, comparable=False, note=str(exc))

    problem = _incompatibility(metadata, test, target=target, task=task, classes=classes)
    if problem:
        return Baseline(version, comparable=False, note=problem)
    try:
        champion = registry.load_model(model, version)
    except StorageUnavailable as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"loading champion v{version}: {exc}") from exc
    except RegistryError as exc:
        return Baseline(version, comparable=False, note=f"cannot be loaded: {exc}")

    features = list(metadata.features or [])
    kinds = {name: (metadata.feature_types or {}).get(name, NUMERIC) for name in features}
    usable = [m for m in metrics if m not in PROBA_METRICS or hasattr(champion, "predict_proba")]
    try:
        scores = compute_metrics(
            champion, to_matrix(test, kinds), target_values(test[target], task), usable
        )
    except Exception as exc:  # noqa: BLE001 - classified: a champion failing on today's data
        log.warning("champion v%s cannot be scored: %s", version, exc)
        return Baseline(version, comparable=False, note=f"cannot be scored: {exc}")
    if key_metric.value not in scores:
        return Baseline(version, comparable=False, note=f"cannot compute {key_metric.value}")
    return Baseline(version, scores)


def _incompatibility(
    metadata: ModelMetadata,
    test: pd.DataFrame,
    *,
    target: str,
    task: Task,
    classes: Sequence[Any] | None,
) -> str:
    if metadata.task != task.value:
        return f"task {metadata.task} differs from {task.value}"
    if metadata.target != target:
        return f"target {metadata.target} differs from {target}"
    missing = [name for name in metadata.features or [] if name not in test.columns]
    if missing:
        return f"features missing from the data: {', '.join(map(str, missing))}"
    if task == Task.CLASSIFICATION and classes is not None:
        theirs = {str(label) for label in metadata.classes or []}
        ours = {str(label) for label in classes}
        if theirs != ours:
            return f"classes differ ({sorted(theirs)} vs {sorted(ours)})"
    return ""


def judge(
    scores: Mapping[str, float],
    gates: Sequence[Mapping[str, Any]],
    baseline: Baseline | None,
    *,
    key_metric: Metric,
    min_improvement: float,
    promote: bool,
) -> Verdict:
    """Bless and promote per the rules in the module docstring; explain in one line."""
    name = key_metric.value
    value = scores[name]
    failed = [gate for gate in gates if not gate["passed"]]
    if failed:
        return Verdict(False, False, "not blessed: " + "; ".join(_gate_text(g) for g in failed))

    if baseline is None:
        reason = f"no champion to beat ({name} {value:.4f})"
    elif not baseline.comparable:
        reason = f"champion v{baseline.version} not comparable ({baseline.note}); passed every gate"
    else:
        theirs = baseline.metrics[name]
        improvement = value - theirs if higher_is_better(name) else theirs - value
        if improvement <= _TOLERANCE or improvement < min_improvement - _TOLERANCE:
            return Verdict(
                False,
                False,
                f"kept champion v{baseline.version}: {name} {value:.4f} does not beat "
                f"{theirs:.4f} (minImprovement {min_improvement})",
            )
        reason = f"{name} {value:.4f} beats champion v{baseline.version} {theirs:.4f}"
    if promote:
        return Verdict(True, True, f"promoted: {reason}")
    return Verdict(True, False, f"blessed, not promoted (promote is false): {reason}")


def _gate_text(gate: Mapping[str, Any]) -> str:
    bounds = []
    if gate.get("min") is not None:
        bounds.append(f">= {gate['min']}")
    if gate.get("max") is not None:
        bounds.append(f"<= {gate['max']}")
    return f"gate {gate['metric']} {' and '.join(bounds)} failed ({gate['value']:.4f})"
