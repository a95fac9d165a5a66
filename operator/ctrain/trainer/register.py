"""Registering the run's one version and moving the champion with a compare-and-set.

One TrainingJob registers at most one version. The trainer looks its TrainingJob's uid up
in the registry first (`Registry.claim_for_job`): a retried pod, or one started again
after an operator restart, finds the version an earlier attempt claimed. If that attempt
already published it, nothing is trained again: the published version is reported from
its metadata.json, and a promotion the attempt did not get to is finished (or declined
with ``ChampionMoved`` if the champion is no longer the one it was compared with).

Promotion is a compare-and-set on the champion (`Registry.promote` with ``expected``: the
champion the run compared against). When another run moved the champion in the meantime,
the run compares itself with the new champion and tries again, at most `RECOMPARISONS`
times; then it declines with reason ``ChampionMoved``. metadata.json keeps the comparison
made before publishing; status reports the last one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ctrain.api import ComparisonVerdict, Reason, TrainingJobSpec
from ctrain.api.contracts import ModelMetadata, TrainingSucceeded, succeeded_from_metadata
from ctrain.registry import ChampionMoved, Registry, RegistryError, VersionNotFound
from ctrain.trainer.compare import Judged, Verdict
from ctrain.trainer.errors import TrainerError

__all__ = ["RECOMPARISONS", "Outcome", "already_registered", "promote"]

RECOMPARISONS = 2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How the run ended for the registry: promoted or not, and the final judgement."""

    promoted: bool
    decision: str
    reason: Reason
    verdict: Verdict
    judged: Judged | None


def promote(
    registry: Registry,
    model: str,
    version: str,
    *,
    expected: str | None,
    verdict: Verdict,
    judged: Judged | None,
    by: str,
    recompare: Callable[[], tuple[str | None, Judged | None]],
    rejudge: Callable[[Judged | None], Verdict],
) -> Outcome:
    """Move the champion to ``version`` if the verdict says so (see the module docstring)."""
    if not verdict.promote:
        return Outcome(False, verdict.decision, Reason.NOT_PROMOTED, verdict, judged)
    moved_to: list[str] = []
    for attempt in range(RECOMPARISONS + 1):
        try:
            registry.promote(model, version, expected=expected, reason=verdict.decision, by=by)
        except ChampionMoved as moved:
            if moved.current == version:  # someone promoted this very version meanwhile
                return Outcome(True, verdict.decision, Reason.PROMOTED, verdict, judged)
            moved_to.append(f"v{moved.current}" if moved.current else "none")
            log.warning("champion moved during the run: %s (attempt %d)", moved, attempt + 1)
            if attempt == RECOMPARISONS:
                break
            expected, judged = recompare()
            verdict = rejudge(judged)
            if not verdict.promote:
                decision = (
                    f"{verdict.decision} (re-compared: the champion moved to "
                    f"{moved_to[-1]} during the run)"
                )
                return Outcome(False, decision, Reason.NOT_PROMOTED, verdict, judged)
        except RegistryError as exc:
            raise TrainerError(Reason.STORAGE_ERROR, f"promoting v{version}: {exc}") from exc
        else:
            log.info("promoted version=%s", version)
            return Outcome(True, verdict.decision, Reason.PROMOTED, verdict, judged)
    decision = (
        f"not promoted: the champion kept moving during the run ({', '.join(moved_to)}); "
        "declined after re-comparing"
    )
    return Outcome(False, decision, Reason.CHAMPION_MOVED, verdict, judged)


def already_registered(
    registry: Registry, spec: TrainingJobSpec, version: str, uid: str, by: str
) -> TrainingSucceeded | None:
    """The result of an earlier attempt that published ``version``; None if none did."""
    model = spec.model
    try:
        metadata = registry.metadata(model, version)
    except VersionNotFound:
        return None
    if metadata.training_job.get("uid") != uid:
        raise TrainerError(
            Reason.STORAGE_ERROR,
            f"v{version} of {model} was claimed by TrainingJob {uid} but published by "
            f"{metadata.training_job.get('uid') or 'another writer'}",
        )
    log.info("version %s was already published by this TrainingJob: not training again", version)
    promoted, reason, decision = _finish_promotion(registry, spec, version, metadata, by)
    return succeeded_from_metadata(
        model,
        version,
        registry.artifact_uri(model, version),
        metadata,
        promoted=promoted,
        decision=f"already registered by this TrainingJob: {decision}",
        promotion_reason=reason.value,
    )


def _finish_promotion(
    registry: Registry, spec: TrainingJobSpec, version: str, metadata: ModelMetadata, by: str
) -> tuple[bool, Reason, str]:
    decision = metadata.decision or ""
    try:
        if any(c.to_version == version for c in registry.champion_history(spec.model)):
            return True, Reason.PROMOTED, decision
        if not (metadata.blessed and spec.promote):
            return False, Reason.NOT_PROMOTED, decision
        comparison = metadata.comparison
        expected = None
        if comparison is not None and comparison.verdict != ComparisonVerdict.NO_CHAMPION:
            expected = comparison.champion_version
        registry.promote(spec.model, version, expected=expected, reason=decision, by=by)
    except ChampionMoved as moved:
        return False, Reason.CHAMPION_MOVED, f"not promoted: {moved} ({decision})"
    except RegistryError as exc:
        raise TrainerError(Reason.STORAGE_ERROR, f"promoting v{version}: {exc}") from exc
    return True, Reason.PROMOTED, decision
