"""Deserialize model.skops with an explicit list of trusted types, never with pickle.

skops already trusts Python primitives, containers, numpy arrays and scikit-learn's
public estimators. Fitted estimators also hold a few internal objects skops does not
trust by default (tree structures, KD-trees, optimizers, dtypes); ctrain trusts exactly
those needed by the estimators on its allowlist (`ctrain.api.catalog.ESTIMATORS`) and
refuses any file that contains anything else, before loading it. A unit test fits every
allowlisted estimator and round-trips it, so this list cannot silently fall behind.
"""

from __future__ import annotations

from typing import Any

from ctrain.registry.errors import IntegrityError, UntrustedModel

__all__ = ["TRUSTED_TYPES", "check_trusted", "loads_trusted"]

TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "numpy.dtype",
        # Decision trees and the forests/boosting ensembles built from them.
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        # Nearest neighbours: the search structures and their distance metrics.
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
    }
)


def check_trusted(data: bytes) -> list[str]:
    """Return the non-default types `data` needs; raise UntrustedModel if any is not trusted."""
    import skops.io  # deferred: importing scikit-learn takes a second

    try:
        needed = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # any parse failure means a corrupt file
        raise IntegrityError(f"model.skops is not a readable skops file: {exc}") from exc
    refused = sorted(set(needed) - TRUSTED_TYPES)
    if refused:
        raise UntrustedModel(
            "model.skops contains types ctrain does not trust, refusing to load it: "
            + ", ".join(refused),
            refused,
        )
    return sorted(needed)


def loads_trusted(data: bytes) -> Any:
    """Load a model.skops payload after checking every type it contains against the list."""
    import skops.io

    trusted = check_trusted(data)
    try:
        return skops.io.loads(data, trusted=trusted)
    except Exception as exc:  # classified: a file skops cannot rebuild
        raise IntegrityError(f"model.skops could not be loaded: {exc}") from exc
