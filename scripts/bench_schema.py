"""Type inference + preflight speed on a wide messy table: --rows rows, 20 columns (numbers with "?"
cells, nullable integers, categories with empty cells, a 1,000-value code column, booleans, ISO dates,
an ID, a row number, short free text, a split and a target), written as CSV and Parquet in a
temporary folder; times load_manifest (read, missing cells, inference, preflight, preprocessing)
with every column's type inferred, and the inference alone. Usage:
    python scripts/bench_schema.py --rows 100000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def build(folder: Path, rows: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, rows)

    def holes(values, share=0.05, cell=None):
        values = pd.Series(values, dtype=object)
        values[rng.random(rows) < share] = cell
        return values

    words = np.array(
        "market fell rose after earnings bonds rallied cut hopes strong weak sales guidance".split()
    )
    frame = pd.DataFrame(
        {
            "row": np.arange(rows),
            "id": [f"c{i:07d}" for i in range(rows)],
            **{f"x{j}": holes(np.round(y + rng.normal(size=rows), 3), 0.03, "?") for j in range(6)},
            "visits": pd.array(
                np.where(rng.random(rows) < 0.1, None, rng.integers(0, 50, rows)), dtype="Int64"
            ),
            "country": holes(rng.choice(["fr", "de", "us", "uk", "es", "it"], rows), 0.05, ""),
            "code": holes([f"k{v}" for v in rng.integers(0, 1000, rows)], 0.02, "N/A"),
            "segment": holes(rng.choice(["retail", "pro", "gov"], rows), 0.1, " "),
            "member": rng.choice(["yes", "no"], rows),
            "active": rng.random(rows) < 0.5,
            "joined": holes(
                [f"20{10 + v % 14}-{1 + v % 12:02d}-{1 + v % 28:02d}" for v in rng.integers(0, 5000, rows)],
                0.02,
            ),
            "note": holes([" ".join(rng.choice(words, rng.integers(4, 12))) for _ in range(rows)], 0.05, ""),
            "channel": rng.choice(["web", "app", "store", "phone"], rows),
            "score": np.round(rng.gamma(2, 2, rows), 2),
            "split": np.where(
                np.arange(rows) % 10 < 7, "train", np.where(np.arange(rows) % 10 < 9, "val", "test")
            ),
            "label": np.array(["low", "mid", "high"])[y],
        }
    )
    csv, parquet = folder / "wide.csv", folder / "wide.parquet"
    frame.to_csv(csv, index=False)
    frame.astype({c: str for c in frame.columns if frame[c].dtype == object}).to_parquet(parquet, index=False)
    return csv, parquet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    import logging

    from mmtrain.data.manifest import load_manifest, read_manifest
    from mmtrain.data.schema import Missing, infer_type, read_missing

    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        csv, parquet = build(Path(tmp), args.rows)
        for path in (csv, parquet):
            start = time.perf_counter()
            frame, _ = read_missing(read_manifest(path), Missing())
            read = time.perf_counter() - start
            start = time.perf_counter()
            types = {c: infer_type(frame[c]) for c in frame.columns if c not in ("label", "split")}
            infer = time.perf_counter() - start
            start = time.perf_counter()
            table = load_manifest(path, targets={"label": {}}, split_column="split")
            total = time.perf_counter() - start
            print(
                f"{path.suffix[1:]:>8}: {args.rows} rows x "
                f"{len(frame.columns)} columns: read + missing cells "
                f"{read:.2f} s, type inference {infer:.2f} s, "
                "load_manifest (all of it, with the preflight and "
                f"preprocessing) {total:.2f} s; {len(table)} rows kept"
            )
        print("types:", ", ".join(f"{c}={t}" for c, t in types.items()))


if __name__ == "__main__":
    main()
