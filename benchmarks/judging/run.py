"""Judging benchmark: the content-hash split and the paired statistics at scale.

Measures, on synthetic data of 10k to 1M rows (5 numeric columns, one text column and a
3-class label; a regression target for the regression metrics):
1. `HashSplit.held_out`, the split of every row by its content hash;
2. `paired_comparison` on a 20% holdout of those rows, for one metric of each kind:
   accuracy (McNemar + bootstrap), f1_macro (confusion counts per resample), roc_auc_ovr
   (sorted scores per resample) and rmse (paired t-test + bootstrap).
Each figure is the best of `--repeat` runs, in seconds, on whatever machine runs it; the
output is one table and, with `--json FILE`, the raw numbers.

    .venv/bin/python benchmarks/judging/run.py --rows 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ctrain.api import Metric
from ctrain.trainer.split import HashSplit
from ctrain.trainer.statistics import Predictions, paired_comparison


def _best(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def _table(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, 5)), columns=[f"x{i}" for i in range(5)])
    frame["colour"] = rng.choice(["red", "green", "blue", "amber"], size=rows)
    frame["label"] = rng.choice(["a", "b", "c"], size=rows)
    return frame


def _models(holdout: int, seed: int = 1) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    classes = np.array(["a", "b", "c"])
    y = rng.choice(classes, size=holdout)

    def classifier(right: float) -> Predictions:
        predicted = np.where(rng.random(holdout) < right, y, rng.choice(classes, holdout))
        proba = rng.dirichlet([1, 1, 1], size=holdout)
        return Predictions(predicted, proba, classes)

    target = rng.normal(size=holdout)
    return {
        "y": y,
        "ours": classifier(0.81),
        "theirs": classifier(0.80),
        "target": target,
        "ours_r": Predictions(target + rng.normal(0, 0.9, holdout)),
        "theirs_r": Predictions(target + rng.normal(0, 1.0, holdout)),
    }


def measure(rows: int, repeat: int) -> dict[str, float]:
    frame = _table(rows)
    split = HashSplit(seed=42, test_size=0.2, columns=tuple(frame.columns))
    result = {"rows": rows, "split_s": _best(repeat, lambda: split.held_out(frame))}
    holdout = rows // 5
    data = _models(holdout)
    for metric in (Metric.ACCURACY, Metric.F1_MACRO, Metric.ROC_AUC_OVR):
        result[f"{metric.value}_s"] = _best(
            repeat,
            lambda m=metric: paired_comparison(m, data["y"], data["ours"], data["theirs"], seed=1),
        )
    result["rmse_s"] = _best(
        repeat,
        lambda: paired_comparison(
            Metric.RMSE, data["target"], data["ours_r"], data["theirs_r"], seed=1
        ),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="Also write the raw results here.")
    args = parser.parse_args()
    results = [measure(rows, args.repeat) for rows in args.rows]
    columns = ["rows", "split_s", "accuracy_s", "f1_macro_s", "roc_auc_ovr_s", "rmse_s"]
    print(" ".join(f"{c:>14}" for c in columns))
    for result in results:
        print(" ".join(f"{result[c]:>14.3f}" if c != "rows" else f"{result[c]:>14d}"
                       for c in columns))  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
