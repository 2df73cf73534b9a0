"""Preflight speed: every row of a manifest with media checked before training (files exist and
decode, text non-empty, numbers finite, labels seen in train).

Builds --rows unique rows (a 1 s 16 kHz wav, a 64x64 RGB PNG, a caption, two numbers, a label) in a
temporary folder, then times load_manifest (read + preflight + preprocessing) twice; with
--drop-caches (root) the OS file cache is emptied first, so every file comes from disk. Usage:
    python scripts/bench_preflight.py --rows 10000 --drop-caches
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path


def build(folder: Path, rows: int) -> Path:
    import numpy as np
    import pandas as pd
    import soundfile
    from PIL import Image

    rng = np.random.default_rng(0)
    (folder / "media").mkdir(parents=True)
    records = []
    for i in range(rows):
        y = i % 3
        soundfile.write(
            folder / "media" / f"{i}.wav", (0.1 * rng.normal(size=16000)).astype(np.float32), 16000
        )
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(folder / "media" / f"{i}.png")
        records.append(
            {
                "audio": f"media/{i}.wav",
                "image": f"media/{i}.png",
                "text": f"caption {i}",
                "likes": float(rng.normal()),
                "shares": float(rng.integers(0, 9)),
                "label": "abc"[y],
                "split": "train" if i % 10 < 7 else "val" if i % 10 < 9 else "test",
            }
        )
    pd.DataFrame(records).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--drop-caches", action="store_true", help="empty the OS file cache before each pass (root)"
    )
    args = parser.parse_args()

    from mmtrain.data.manifest import load_manifest

    folder = Path(tempfile.mkdtemp(prefix="mmtrain-preflight-"))
    start = time.perf_counter()
    path = build(folder, args.rows)
    print(f"built {args.rows} rows (wav + png each) in {time.perf_counter() - start:.1f} s")
    options = dict(
        modalities={"audio": {}, "image": {}, "text": {}, "meta": {"numeric": ["likes", "shares"]}},
        targets={"label": {}},
        split_column="split",
    )
    for attempt in ("first", "second"):
        if args.drop_caches:  # root only: the first pass then reads every file from disk
            subprocess.run(["sh", "-c", "sync && echo 3 > /proc/sys/vm/drop_caches"], check=False)
        start = time.perf_counter()
        table = load_manifest(path, **options)
        print(
            f"{attempt} load_manifest (read + preflight of {len(table)} rows, 2 media files each): "
            f"{time.perf_counter() - start:.1f} s"
        )


if __name__ == "__main__":
    main()
