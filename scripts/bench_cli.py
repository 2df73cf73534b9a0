"""Two CLI targets, measured as a user would see them:
1. wall time of the default `mmtrain` run, from the command to the metrics table (imports included);
2. 2-process CPU DDP vs 1 process: test metrics of the same config over --seeds (the per-process
   batch halved under DDP so the effective batch is the same), to compare the DDP difference with
   the seed-to-seed spread.
Usage:
    python scripts/bench_cli.py [--seeds 0 1 2] [--skip-ddp] [--out bench/cli]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

KEYS = [
    "test/sentiment/f1_macro",
    "test/sentiment/acc",
    "test/sentiment/auroc",
    "test/sentiment/balanced_acc",
]


def mmtrain(*args: str) -> float:
    """Runs the console script next to this interpreter; returns its wall time in seconds."""
    script = Path(sys.executable).with_name("mmtrain")
    start = time.perf_counter()
    result = subprocess.run(
        [str(script), *args], capture_output=True, text=True, env={**os.environ, "HYDRA_FULL_ERROR": "1"}
    )
    elapsed = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"mmtrain {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/cli"))
    parser.add_argument("--skip-ddp", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    out = args.out.absolute()

    wall = mmtrain(f"hydra.run.dir={out}/default")
    f1 = json.loads((out / "default" / "metrics.json").read_text())["test/sentiment/f1_macro"]
    print(f"default run: {wall:.1f} s wall (target <= 60 s), test macro-F1 {f1:.3f}")
    if args.skip_ddp:
        return

    import statistics

    common = ["trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]
    runs = {
        "1 process": ["data.batch_size=64"],
        "2 processes": ["trainer=ddp", "trainer.devices=2", "data.batch_size=32"],
    }
    results = {name: [] for name in runs}
    for seed in args.seeds:
        for name, extra in runs.items():
            run_dir = out / f"{name.replace(' ', '_')}_seed{seed}"
            wall = mmtrain(*common, *extra, f"seed={seed}", f"hydra.run.dir={run_dir}")
            results[name].append(json.loads((run_dir / "metrics.json").read_text()))
            print(
                f"seed {seed} {name}: {wall:.1f} s, test macro-F1 {results[name][-1][KEYS[0]]:.4f}",
                flush=True,
            )
    print(f"{'metric':32s} {'1 process':>16s} {'2 processes':>16s}")
    for key in KEYS:
        cells = []
        for name in runs:
            values = [m[key] for m in results[name]]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.4f} ± {spread:.4f}")
        print(f"{key:32s} {cells[0]:>16s} {cells[1]:>16s}")


if __name__ == "__main__":
    main()
