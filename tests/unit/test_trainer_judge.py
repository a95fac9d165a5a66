"""The verdict: Better or NotBetter, significance, NotComparable, and blessing/promotion."""

from __future__ import annotations

from typing import Any

import pytest

from ctrain.api import Comparison, ComparisonVerdict, EvaluationSpec, Metric, Reason
from ctrain.trainer.compare import Judged, comparison_verdict, judge, no_champion

pytestmark = pytest.mark.unit

BETTER, NOT_BETTER = ComparisonVerdict.BETTER, ComparisonVerdict.NOT_BETTER


def _evaluation(**fields: Any) -> EvaluationSpec:
    return EvaluationSpec.parse(fields)


@pytest.mark.parametrize(
    ("delta", "p_value", "evaluation", "verdict", "significant"),
    [
        (0.04, 0.5, {}, BETTER, None),  # default: positive is enough
        (0.0, 0.5, {}, NOT_BETTER, None),  # a tie keeps the champion
        (-0.01, 0.01, {}, NOT_BETTER, None),
        (0.04, 0.5, {"minImprovement": 0.05}, NOT_BETTER, None),
        (0.05, 0.5, {"minImprovement": 0.05}, BETTER, None),  # exactly enough
        (0.04, 0.5, {"significance": {"test": "None"}}, BETTER, None),
        (0.04, 0.21, {"significance": {"test": "McNemar"}}, NOT_BETTER, False),
        (0.04, 0.049, {"significance": {"test": "McNemar"}}, BETTER, True),
        (
            0.04,
            0.049,
            {"significance": {"test": "PairedBootstrap", "alpha": 0.01}},
            NOT_BETTER,
            False,
        ),
        (0.04, None, {"significance": {"test": "PairedBootstrap"}}, NOT_BETTER, False),
        (-0.04, 0.001, {"significance": {"test": "PairedBootstrap"}}, NOT_BETTER, None),
    ],
)
def test_comparison_verdict(
    delta: float,
    p_value: float | None,
    evaluation: dict[str, Any],
    verdict: ComparisonVerdict,
    significant: bool | None,
) -> None:
    scores = ("accuracy", 0.9, 0.9 - delta)
    got, reason, was = comparison_verdict(
        delta, p_value, _evaluation(**evaluation), "2", scores=scores
    )
    assert (got, was) == (verdict, significant)
    assert "accuracy 0.9000" in reason and f"champion v2 {0.9 - delta:.4f}" in reason
    assert ("beats" in reason) == (verdict == BETTER)


def _judged(verdict: ComparisonVerdict, **fields: Any) -> Judged:
    comparison = Comparison(
        champion_version="2",
        holdout_rows=30,
        champion_seen_rows=0,
        excluded_rows=0,
        challenger={"accuracy": 0.97},
        champion={"accuracy": 0.93},
        verdict=verdict,
        reason=fields.pop("reason", "accuracy 0.9700 beats champion v2 0.9300: delta +0.0400"),
        **fields,
    )
    return Judged(comparison, {"accuracy": 0.93})


def _judge(judged: Judged | None, *, gates: Any = (), promote: bool = True, **evaluation: Any):
    return judge(
        {"accuracy": 0.97},
        list(gates),
        judged,
        key_metric=Metric.ACCURACY,
        evaluation=_evaluation(**evaluation),
        promote=promote,
    )


def test_a_better_challenger_is_blessed_and_promoted() -> None:
    verdict = _judge(_judged(BETTER))
    assert (verdict.blessed, verdict.promote, verdict.reason) == (True, True, Reason.GATES_PASSED)
    assert verdict.decision == (
        "promoted: accuracy 0.9700 beats champion v2 0.9300: delta +0.0400 on 30 unseen rows"
    )
    assert verdict.before_promotion.startswith("blessed: accuracy 0.9700 beats")


def test_not_better_and_not_significant_keep_the_champion() -> None:
    plain = _judge(_judged(NOT_BETTER, reason="delta -0.01 not positive"))
    assert (plain.blessed, plain.promote, plain.reason) == (
        False,
        False,
        Reason.BASELINE_NOT_BEATEN,
    )
    assert plain.decision == "kept champion v2: delta -0.01 not positive"
    weak = _judge(_judged(NOT_BETTER, significant=False, reason="not significant"))
    assert (weak.blessed, weak.reason) == (False, Reason.NOT_SIGNIFICANT)


def test_no_champion_and_baseline_none_are_judged_on_gates() -> None:
    for judged in (no_champion(), None):
        verdict = _judge(judged)
        assert (verdict.blessed, verdict.promote, verdict.reason) == (
            True,
            True,
            Reason.NO_BASELINE,
        )
        assert verdict.decision == "promoted: no champion to beat (accuracy 0.9700)"
    assert no_champion().baseline() is None


def test_a_not_comparable_champion_blocks_unless_gates_only() -> None:
    judged = Judged(
        Comparison(
            champion_version="4",
            verdict=ComparisonVerdict.NOT_COMPARABLE,
            reason="champion v4 not comparable: cannot be loaded: sha256 mismatch",
        ),
        {},
    )
    blocked = _judge(judged)
    assert (blocked.blessed, blocked.promote) == (False, False)
    assert blocked.reason == Reason.CHAMPION_NOT_COMPARABLE
    assert "sha256 mismatch" in blocked.decision and "Block" in blocked.decision
    allowed = _judge(judged, onIncomparableChampion="GatesOnly")
    assert (allowed.blessed, allowed.promote) == (True, True)
    assert "GatesOnly" in allowed.decision
    assert judged.baseline() is not None and judged.baseline().to_wire() == {
        "version": "4",
        "metrics": {},
        "comparable": False,
        "note": "champion v4 not comparable: cannot be loaded: sha256 mismatch",
    }


def test_gates_come_first_and_promote_false_only_blesses() -> None:
    failed = [{"metric": "accuracy", "min": 0.99, "value": 0.97, "passed": False}]
    verdict = _judge(_judged(BETTER), gates=failed)
    assert (verdict.blessed, verdict.reason) == (False, Reason.GATES_FAILED)
    assert verdict.decision == "not blessed: gate accuracy >= 0.99 failed (0.9700)"
    kept = _judge(_judged(BETTER), promote=False)
    assert (kept.blessed, kept.promote) == (True, False)
    assert kept.decision.startswith("blessed, not promoted (promote is false)")
