"""Ground truth: logged predictions joined with labels that arrive later.

Production rows become evidence once their labels arrive: the live-performance pod
scores the served versions on them, and the trainer retrains on them
(`dataset.feedback`). Both roles import this package, so the join is written once; it
sits below the roles and imports only the api, the registry and storage
(`.importlinter`). Reading is data work: it runs in pods, never in the operator, which
uses only the pure decision (`judge`) and the labels' identity (one listing).

- `layout`: the keys (labels/, predictions/<day>/, performance.json) and the `Window`;
- `labels`, `predictions`: one object as a table; `joining`: the join itself;
- `history`: performance.json, bounded; `verdict`: degraded or not, failing closed;
- `identity`: what makes labelled production rows "new data" for triggers.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ctrain.feedback.history import DEFAULT_HISTORY_LIMIT, append_point, read_history
from ctrain.feedback.identity import data_identity, labels_identity
from ctrain.feedback.layout import Window, labels_root, performance_key
from ctrain.feedback.verdict import Judgement, judge, not_measured

if TYPE_CHECKING:
    from ctrain.feedback.joining import Joined, VersionCounts, join
    from ctrain.feedback.labels import ID, LABEL, ROW, class_text
    from ctrain.feedback.predictions import PREDICTION, TS, VERSION

# The table work (pandas, pyarrow) is imported on first use: the operator imports this
# package for `judge` and the identities and must not pay for (or hold) pandas.
_LAZY = {
    "Joined": "joining",
    "VersionCounts": "joining",
    "join": "joining",
    "ID": "labels",
    "LABEL": "labels",
    "ROW": "labels",
    "class_text": "labels",
    "PREDICTION": "predictions",
    "TS": "predictions",
    "VERSION": "predictions",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "ID",
    "LABEL",
    "PREDICTION",
    "ROW",
    "TS",
    "VERSION",
    "Joined",
    "Judgement",
    "VersionCounts",
    "Window",
    "append_point",
    "class_text",
    "data_identity",
    "join",
    "judge",
    "labels_identity",
    "labels_root",
    "not_measured",
    "performance_key",
    "read_history",
]
