"""Ensemble targets: a portfolio of runs on a real set, then `mmtrain-ensemble` over them; prints every
member's val/test score beside the ensemble's, each command's wall time and the total.

Portfolios (chosen on validation; docs/recipes.md has the evidence):
  tfns      finance tweets (../shared/data/tfns): preset=balanced seeds 0,1,2 + preset=fast + model=gbm
  tfns_backbones  the same tweets on two backbones: preset=balanced and preset=fast on MiniLM, preset=fast and
            model=gbm on frozen MPNet (`mmtrain-models get mpnet` first)
  avdigits  spoken digits + image_hard, val = a held-out training speaker, scored on test_speaker (an
            unseen speaker): late fusion seeds 0,1,2 + intermediate + each modality alone
Runs go to --out/runs/<name> (an existing finished run is reused unless --fresh), the ensemble to
--out/runs/ensemble. Usage:
    python scripts/bench_ensemble.py tfns --out bench/ensemble_tfns
    python scripts/bench_ensemble.py avdigits --out bench/ensemble_avdigits
    python scripts/bench_ensemble.py tfns --out bench/ensemble_tfns --method stack   # reuse the runs
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TFNS = [
    "data=manifest",
    f"data.path={SHARED / 'tfns' / 'manifest.csv'}",
    "data.split_column=split",
    "data.targets.label.column=label",
]
AVDIGITS = [
    "data=avdigits",
    f"data.path={SHARED / 'avdigits' / 'manifest.csv'}",
    "++data.modalities.image.column=image_hard",
    "data.group_column=speaker",
    "data.val_split=group",
    "trainer.max_epochs=40",
    "callbacks.early_stopping.patience=6",
    "encoder.image.dropout=0.3",
    "model.modality_dropout=0.3",
]
PORTFOLIOS = {
    "tfns": (
        TFNS,
        "label",
        ["test"],
        {
            "balanced_seed0": ["preset=balanced", "seed=0"],
            "balanced_seed1": ["preset=balanced", "seed=1"],
            "balanced_seed2": ["preset=balanced", "seed=2"],
            "fast": ["preset=fast"],
            "gbm": ["model=gbm"],
        },
    ),
    # members on two backbones (MiniLM fine-tuned, MPNet frozen): they disagree more than seeds of one
    "tfns_backbones": (
        TFNS,
        "label",
        ["test"],
        {
            "balanced_minilm": ["preset=balanced"],
            "fast_minilm": ["preset=fast"],
            "fast_mpnet": ["preset=fast", "encoder/text=mpnet"],
            "gbm_mpnet": ["model=gbm", "encoder/text=mpnet"],
        },
    ),
    "avdigits": (
        AVDIGITS,
        "digit",
        ["test", "test_speaker"],
        {
            "late_seed0": ["fusion=late", "seed=0"],
            "late_seed1": ["fusion=late", "seed=1"],
            "late_seed2": ["fusion=late", "seed=2"],
            "intermediate": ["fusion=intermediate"],
            "image_only": ["modalities=[image]", "fusion=early"],
            "audio_only": ["modalities=[audio]", "fusion=early"],
        },
    ),
}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"{' '.join(command[:3])} ... failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("portfolio", choices=list(PORTFOLIOS))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--method", default="greedy", choices=["greedy", "stack"])
    parser.add_argument("--members", nargs="*", default=None, help="a subset of the portfolio's runs")
    parser.add_argument("--fresh", action="store_true", help="train every run again")
    args = parser.parse_args()
    data, task, tests, runs = PORTFOLIOS[args.portfolio]
    runs = {k: v for k, v in runs.items() if args.members is None or k in args.members}
    bin_dir, folder = Path(sys.executable).parent, args.out.absolute() / "runs"
    walls = {}
    for name, overrides in runs.items():
        run_dir = folder / name
        if (run_dir / "metrics.json").is_file() and not args.fresh:
            walls[name] = json.loads((run_dir / "run.json").read_text()).get("wall_s", {})
            walls[name] = sum(walls[name].values())
            continue
        shutil.rmtree(run_dir, ignore_errors=True)
        walls[name] = timed([str(bin_dir / "mmtrain"), *data, *overrides, f"hydra.run.dir={run_dir}"])
        print(f"{name}: {walls[name]:.0f} s", flush=True)
    for stale in folder.iterdir():
        if stale.is_dir() and stale.name not in runs and stale.name != "ensemble":
            shutil.rmtree(stale)  # a run of another selection is not a candidate here
    ensemble_wall = timed(
        [str(bin_dir / "mmtrain-ensemble"), f"runs={folder}", f"ensemble.method={args.method}"]
    )
    metric = "acc"
    rows = []
    for name in [*runs, "ensemble"]:
        metrics = json.loads((folder / name / "metrics.json").read_text())
        scores = {
            (s, m): metrics.get(f"{s}/{task}/{m}") for s in ["val", *tests] for m in (metric, "f1_macro")
        }
        rows.append((name, scores))
    header = [f"{s} {m}" for s in ["val", *tests] for m in (metric, "f1_macro")]
    print("| run | " + " | ".join(header) + " | wall |")
    print("|---|" + "---|" * (len(header) + 1))
    for name, scores in rows:
        wall = ensemble_wall if name == "ensemble" else walls[name]
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in scores.values()) + f" | {wall:.0f} s |")
    total = sum(walls.values()) + ensemble_wall
    print(
        f"total wall (the runs' own, as measured or from run.json, + mmtrain-ensemble): {total / 60:.1f} min"
    )
    print(json.loads((folder / "ensemble" / "ensemble.json").read_text())["combine"])


if __name__ == "__main__":
    main()
