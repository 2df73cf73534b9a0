"""Pruning on a search space with bad regions: the same seeded Optuna sweep (learning rates 1e-6 ... 1) with
and without the median pruner; prints epochs trained, wall time and the best trial of each.

    python scripts/bench_sweeps.py --out /tmp/bench_sweeps [--trials 12 --epochs 6]
(The multi-driver Slurm target is not measured here yet: see tests/test_studies.py for drivers sharing
a PostgreSQL study.)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
from bench_resume_and_sweeps import SMALL  # the small models every sweep benchmark uses

FAST = [*SMALL, "data.source.num_samples=800", "~callbacks.early_stopping"]


def sweep(out: Path, name: str, trials: int, epochs: int, pruner: list[str]) -> tuple[float, int, list]:
    """One sweep, run in out/sweep (the same dir both times: a driver's sampler seed follows its dir, so
    both sweeps start from the same draws), then moved to out/<name>; -> (wall, epochs trained, trials)."""
    shutil.rmtree(out / name, ignore_errors=True)
    shutil.rmtree(out / "sweep", ignore_errors=True)
    storage = f"journal:{out / 'sweep' / 'study.log'}"
    command = [
        sys.executable,
        "-m",
        "mmtrain",
        "-m",
        "hparams_search=fusion_optuna",
        "hydra.sweeper.params=null",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=bench",
        f"hydra.sweeper.n_trials={trials}",
        "hydra.sweeper.sampler.n_startup_trials=4",
        "optim.optimizer.lr=tag(log, interval(1e-6, 1.0))",
        f"trainer.max_epochs={epochs}",
        *FAST,
        *pruner,
        f"hydra.sweep.dir={out / 'sweep'}",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    epochs_run = sum(log.read_text().count(" done (step") for log in (out / "sweep").glob("*/cli.log"))
    from mmtrain.sweeping.study import storage_of

    trials = optuna.load_study(study_name="bench", storage=storage_of(storage)).trials
    (out / "sweep").rename(out / name)
    return wall, epochs_run, trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    off = ["hydra.sweeper.pruner=null"]
    rows = {
        "no pruning": sweep(args.out.absolute(), "off", args.trials, args.epochs, off),
        "median pruner": sweep(args.out.absolute(), "on", args.trials, args.epochs, []),
    }
    print("| sweep | epochs trained | wall | pruned | best trial (lr) | best val macro-F1 |")
    print("|---|---|---|---|---|---|")
    for name, (wall, epochs, trials) in rows.items():
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in trials)
        best = max((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)
        print(
            f"| {name} | {epochs} | {wall:.0f} s | {pruned} | {best.number} "
            f"({best.params['optim.optimizer.lr']:.2e}) | {best.value:.4f} |"
        )
    saved = 1 - rows["median pruner"][1] / rows["no pruning"][1]
    print(f"epochs saved by pruning: {saved:.0%}")


if __name__ == "__main__":
    main()
