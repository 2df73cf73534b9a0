"""Fuzz the data path long: tests/test_fuzz.py (messy manifests of every column kind, dtype, missing
rate and format; infer, preflight, one short epoch, predict on new rows) with --examples random
examples in one warm process, then a summary: how many trained and predicted, how many stopped with
a clear ConfigError/DataError (by kind), and the first failure (a traceback or a non-finite prediction),
if any. Usage:
    python scripts/fuzz_manifests.py --examples 500
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = Path(tmp) / "outcomes.jsonl"
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                str(ROOT / "tests" / "test_fuzz.py"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "MMTRAIN_FUZZ_EXAMPLES": str(args.examples),
                "MMTRAIN_FUZZ_OUTCOMES": str(outcomes),
            },
            check=False,
        )
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in outcomes.read_text().splitlines()] if outcomes.is_file() else []
    kinds = collections.Counter(
        "predicted"
        if r["outcome"] == "predicted"
        else "exception"
        if r["outcome"] == "exception"
        else re.sub(r"[\d'\"].*", "", r["outcome"])[:70]
        for r in rows
    )
    print(
        f"{len(rows)} examples in {wall:.0f} s ({wall / max(1, len(rows)):.2f} "
        f"s each), pytest exit {proc.returncode}"
    )
    for kind, n in kinds.most_common():
        print(f"  {n:5d}  {kind}")
    failed = [r for r in rows if r["outcome"] == "exception"]
    print(f"tracebacks or non-finite predictions: {len(failed) and 'yes (see below)' or 0}")
    if proc.returncode:
        print(proc.stdout[-6000:])
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
