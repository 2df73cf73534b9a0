"""Two CLI targets, measured as a user would see them:
1. wall time of the default `mmtrain` run, from the command to the metrics table (imports included);
2. 2-process CPU DDP vs 1 process: test metrics of the same config (the per-process batch halved
   under DDP so the effective batch is the same).
Usage:
    python scripts/bench_cli.py [--skip-ddp] [--out bench/cli]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

KEYS = ["test/sentiment/f1_macro", "test/sentiment/acc", "test/sentiment/auroc", "test/sentiment/balanced_acc"]


def mmtrain(*args: str) -> float:
    """Runs the console script next to this interpreter; returns its wall time in seconds."""
    script = Path(sys.executable).with_name("mmtrain")
    start = time.perf_counter()
    result = subprocess.run([str(script), *args], capture_output=True, text=True,
                            env={**os.environ, "HYDRA_FULL_ERROR": "1"})
    elapsed = time.perf_counter() - start
    if result.returncode:
        sys.exit(f"mmtrain {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/cli"))
    parser.add_argument("--skip-ddp", action="store_true")
    args = parser.parse_args()
    out = args.out.absolute()

    wall = mmtrain(f"hydra.run.dir={out}/default")
    f1 = json.loads((out / "default" / "metrics.json").read_text())["test/sentiment/f1_macro"]
    print(f"default run: {wall:.1f} s wall (target <= 60 s), test macro-F1 {f1:.3f}")
    if args.skip_ddp:
        return

    common = ["trainer.accelerator=cpu", "trainer.enable_progress_bar=false"]
    one = mmtrain(*common, "data.batch_size=64", f"hydra.run.dir={out}/ddp1")
    two = mmtrain(*common, "trainer=ddp", "trainer.devices=2", "data.batch_size=32", f"hydra.run.dir={out}/ddp2")
    m1 = json.loads((out / "ddp1" / "metrics.json").read_text())
    m2 = json.loads((out / "ddp2" / "metrics.json").read_text())
    print(f"{'metric':32s} {'1 process':>10s} {'2 processes':>12s} {'diff':>8s}")
    for key in KEYS:
        print(f"{key:32s} {m1[key]:10.4f} {m2[key]:12.4f} {m2[key] - m1[key]:+8.4f}")
    print(f"wall: 1 process {one:.1f} s, 2 processes {two:.1f} s")


if __name__ == "__main__":
    main()
