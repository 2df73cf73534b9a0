"""Targets of the sweeps/cluster work, measured through the real command line:
1. kill -9 at a random moment of training (after its first checkpoint), then the same command again
   (it auto-resumes from the run dir's last.ckpt): is metrics.json identical to an uninterrupted
   run's? (--trials times)
2. DDP evaluation of one checkpoint on 2 CPU processes vs 1, on a test split of odd size.
3. seconds for `mmtrain-report` over a 12-job sweep dir (4 fusions x 3 seeds).
Usage:
    python scripts/bench_resume_and_sweeps.py --trials 10 --out bench/resume
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

SMALL = [
    "encoder/text=scratch",
    "encoder.text.dim=32",
    "encoder.text.layers=1",
    "encoder.text.heads=2",
    "encoder.audio.channels=32",
    "encoder.audio.layers=2",
    "fusion.dim=32",
    "data.batch_size=32",
    "trainer.enable_progress_bar=false",
]
RESUME = [*SMALL, "data.source.num_samples=900", "trainer.max_epochs=8", "~callbacks.early_stopping"]


def mmtrain(*args: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "mmtrain", *args], capture_output=True, text=True, **kwargs
    )
    if result.returncode:
        sys.exit(f"mmtrain {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result


def kill_trials(out: Path, trials: int) -> None:
    # The uninterrupted run, timed from its first checkpoint to its end: the window for the kills.
    start = time.perf_counter()
    full = subprocess.Popen(
        [sys.executable, "-m", "mmtrain", *RESUME, f"hydra.run.dir={out}/full"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not (out / "full" / "checkpoints" / "last.ckpt").exists() and full.poll() is None:
        time.sleep(0.02)
    first_ckpt = time.perf_counter()
    full.wait()
    duration, train_s = time.perf_counter() - start, time.perf_counter() - first_ckpt
    reference = json.loads((out / "full" / "metrics.json").read_text())
    rng = random.Random(0)
    identical = 0
    for trial in range(trials):
        run_dir = out / f"trial{trial}"
        command = [sys.executable, "-m", "mmtrain", *RESUME, f"hydra.run.dir={run_dir}"]
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        ckpt = run_dir / "checkpoints" / "last.ckpt"
        while not ckpt.exists() and proc.poll() is None:
            time.sleep(0.02)
        delay = rng.uniform(0.0, train_s)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        epoch = torch.load(ckpt, weights_only=True, mmap=True)["epoch"] if ckpt.exists() else "none"
        resumed = subprocess.run(command, capture_output=True, text=True)
        same = resumed.returncode == 0 and json.loads((run_dir / "metrics.json").read_text()) == reference
        identical += same
        print(
            f"trial {trial}: kill -9 {delay:4.2f} s after the first checkpoint "
            f"({'killed' if killed else 'had finished'}, last.ckpt epoch "
            f"{epoch}) -> resumed metrics {'identical' if same else 'DIFFERENT'}",
            flush=True,
        )
    print(
        f"kill -9 then resume: {identical} of {trials} trials identical to the uninterrupted run "
        f"({duration:.1f} s per run)"
    )


def ddp_eval(out: Path) -> None:
    data = [*SMALL, "data.source.num_samples=1001"]  # 151 test rows: odd, so padding would show
    mmtrain(*data, "trainer.max_epochs=2", f"hydra.run.dir={out}/train")
    ckpt = out / "train" / "checkpoints" / "best.ckpt"
    mmtrain(*data, "train=false", f"ckpt_path={ckpt}", f"hydra.run.dir={out}/one")
    mmtrain(
        *data,
        "train=false",
        f"ckpt_path={ckpt}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"hydra.run.dir={out}/two",
    )
    one = json.loads((out / "one" / "metrics.json").read_text())
    two = json.loads((out / "two" / "metrics.json").read_text())
    worst = max(abs(one[k] - two[k]) for k in one)
    print(
        f"DDP evaluation (151 test rows): 2 processes vs 1, largest metric difference {worst:.2e} "
        f"over {len(one)} metrics"
    )


def leaderboard(out: Path) -> None:
    sweep = out / "sweep12"
    mmtrain(
        "-m",
        "fusion=early,late,intermediate,hybrid",
        "seed=0,1,2",
        *SMALL,
        "data.source.num_samples=300",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={sweep}",
    )
    (sweep / "leaderboard.md").unlink()
    report = Path(sys.executable).with_name("mmtrain-report")
    start = time.perf_counter()
    subprocess.run([str(report), str(sweep)], check=True, capture_output=True)
    elapsed = time.perf_counter() - start
    rows = len((sweep / "leaderboard.csv").read_text().splitlines()) - 1
    print(f"leaderboard over a 12-job sweep: {elapsed:.2f} s (mmtrain-report, imports included), {rows} rows")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench/resume"))
    parser.add_argument("--only", choices=["kill", "ddp", "leaderboard"])
    args = parser.parse_args()
    out = args.out.absolute()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name, step in (
        ("kill", lambda: kill_trials(out, args.trials)),
        ("ddp", lambda: ddp_eval(out)),
        ("leaderboard", lambda: leaderboard(out)),
    ):
        if args.only in (None, name):
            step()


if __name__ == "__main__":
    main()
