"""Sweeps that scale out, measured.

python scripts/bench_sweeps.py pruning --out /tmp/bench_sweeps [--trials 16 --epochs 6]
    Pruning on a search space with bad regions: the same seeded sweep (learning rates 1e-6 ... 1, a
    random sampler, so that both sweeps try the same settings) with and without the pruner; epochs
    trained, wall time and the best trial of each.
python scripts/bench_sweeps.py drivers --out /tmp/bench_drivers [--drivers 4 --trials 5]
    A job array of drivers (scripts/slurm/sweep_array.sh) on the real one-node Slurm of
    ../shared/tools/slurm, sharing one study in a real PostgreSQL: trials in the study, parameter sets
    run twice, and the wall against 1.3 x (trials / drivers in parallel x mean trial time). Needs root
    and Debian's slurm and postgresql packages.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
from bench_resume_and_sweeps import SMALL  # the small models every sweep benchmark uses

REPO = Path(__file__).resolve().parent.parent
FAST = [*SMALL, "data.source.num_samples=800", "~callbacks.early_stopping"]
RANDOM = [
    "hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler",
    "~hydra.sweeper.sampler.n_startup_trials",
]


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
        *RANDOM,
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


def pruning(args) -> None:
    off = ["hydra.sweeper.pruner=null"]
    rows = {
        "no pruning": sweep(args.out.absolute(), "off", args.trials, args.epochs, off),
        "pruner": sweep(args.out.absolute(), "on", args.trials, args.epochs, args.pruner),
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
    saved = 1 - rows["pruner"][1] / rows["no pruning"][1]
    pruner = " ".join(args.pruner) or "the search config's pruner"
    print(f"epochs saved by pruning: {saved:.0%} ({pruner})")


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The most intervals that overlap at one time."""
    events = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def drivers(args) -> None:
    sys.path.insert(0, str(REPO / "tests"))
    import local_postgres

    tools, out = REPO.parent / "shared" / "tools" / "slurm", args.out.absolute()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    env = {
        **os.environ,
        "SLURM_STATE": str(out / "slurm-state"),
        "MMTRAIN": str(Path(sys.executable).parent / "mmtrain"),
    }
    subprocess.run(["bash", str(tools / "start.sh")], env=env, check=True, capture_output=True)
    try:
        with local_postgres.running_postgres() as url:
            start = time.perf_counter()
            job = subprocess.run(
                [
                    "sbatch",
                    "--parsable",
                    f"--array=0-{args.drivers - 1}",
                    "--cpus-per-task=1",  # this node has 2 cores: the script asks for 4
                    f"--chdir={out}",
                    f"--output={out}/slurm-%A_%a.out",
                    str(REPO / "scripts" / "slurm" / "sweep_array.sh"),
                    "hparams_search=fusion_optuna",
                    "study=bench",
                    f"storage={url}",
                    f"trials={args.trials}",
                    f"trainer.max_epochs={args.epochs}",
                    *FAST,
                ],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()
            while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
                time.sleep(1)
            wall = time.perf_counter() - start
            trials = optuna.load_study(study_name="bench", storage=url).trials
    finally:
        subprocess.run(["bash", str(tools / "stop.sh")], env=env, capture_output=True)
    finished = [t for t in trials if t.state.is_finished()]
    states = {
        s.name: sum(t.state == s for t in trials)
        for s in optuna.trial.TrialState
        if any(t.state == s for t in trials)
    }
    sets = [tuple(sorted(t.params.items())) for t in trials]
    times = [(t.datetime_start.timestamp(), t.datetime_complete.timestamp()) for t in finished]
    mean = sum(b - a for a, b in times) / len(times)
    parallel = most_at_once(times)
    bound = 1.3 * len(finished) / parallel * mean
    print(
        f"{args.drivers} drivers x {args.trials} trials (sbatch --array, PostgreSQL): "
        f"{len(trials)} trials in "
        f"the study ({states}), {len(sets) - len(set(sets))} parameter sets run twice, "
        f"{len({t.user_attrs.get('driver') for t in trials})} drivers"
    )
    print(
        f"wall {wall:.0f} s (submit to the last task's end); mean trial {mean:.1f} s; at most {parallel} "
        f"trials at once (Slurm's cores); 1.3 x ({len(finished)} / {parallel} x {mean:.1f} s) = {bound:.0f} s"
        f" -> {wall / bound * 1.3:.2f} x the ideal"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pruning")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--trials", type=int, default=16)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument(
        "--pruner", nargs="*", default=[], help="overrides of hydra.sweeper.pruner (default: the config's)"
    )
    p.set_defaults(run=pruning)
    d = commands.add_parser("drivers")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--drivers", type=int, default=4)
    d.add_argument("--trials", type=int, default=5)
    d.add_argument("--epochs", type=int, default=3)
    d.set_defaults(run=drivers)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
