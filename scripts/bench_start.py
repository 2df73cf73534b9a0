"""How fast mmtrain answers, as a user sees it (wall time of the console script, imports included):
--help, --cfg job, a misspelt key, a missing data file, `debug=fast` (second run: warm), and the
default run cold (an empty feature store, MMTRAIN_CACHE_DIR in a fresh folder) and warm (again, same
store). Usage:
    python scripts/bench_start.py [--skip-default]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(args: list[str], env: dict, cwd: str) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    last = (proc.stderr.strip().splitlines() or [""])[-1][:110]
    return time.perf_counter() - start, proc.returncode, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-default", action="store_true", help="leave out the two default runs (~2 min)")
    args = parser.parse_args()
    mmtrain = str(Path(sys.executable).with_name("mmtrain"))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MMTRAIN_CACHE_DIR": str(Path(tmp) / "store")}
        cases = [
            ("--help", [mmtrain, "--help"]),
            ("--cfg job", [mmtrain, "--cfg", "job"]),
            ("a misspelt key (trainer.max_epoch=2)", [mmtrain, "trainer.max_epoch=2"]),
            ("a value of the wrong type (trainer.max_epochs=two)", [mmtrain, "trainer.max_epochs=two"]),
            (
                "a missing data file",
                [mmtrain, "data=manifest", "data.path=/nowhere/posts.csv", "data.targets.y.column=y"],
            ),
            ("debug=fast, first", [mmtrain, "debug=fast", f"hydra.run.dir={tmp}/fast1"]),
            ("debug=fast, warm", [mmtrain, "debug=fast", f"hydra.run.dir={tmp}/fast2"]),
        ]
        if not args.skip_default:
            cases += [
                ("default run, cold (empty feature store)", [mmtrain, f"hydra.run.dir={tmp}/default1"]),
                ("default run, warm", [mmtrain, f"hydra.run.dir={tmp}/default2"]),
            ]
        print(f"{'case':<52} {'wall':>7}  exit  last line")
        for name, command in cases:
            wall, code, last = timed(command, env, tmp)
            print(f"{name:<52} {wall:6.1f}s  {code:>4}  {last}")


if __name__ == "__main__":
    main()
