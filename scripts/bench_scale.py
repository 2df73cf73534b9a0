"""Real-sized data: memory and time as the number of rows grows, DataLoader workers, the feature store.

On a generated image + caption manifest (128 px JPEGs of coloured shapes; the label is the shape's
colour, the caption names the shape), trains one epoch of ``encoder/image=timm
encoder.image.name=resnet18`` (random weights, fine-tuned, decoded per batch) + the default frozen
MiniLM text encoder, and measures:

1. rows: peak memory of the run's whole process tree (the trainer and its DataLoader workers:
   the sum of their PSS, sampled from /proc every 0.2 s) and train-phase seconds per row, at each of
   ``--rows``;
2. workers: train steps/s with ``data.num_workers=2`` vs 0 at the first of ``--rows``;
3. store: data preparation (the featurize phase) of a first run vs a second one with the warm feature
   store, for frozen MiniLM on 3,000 captions and a frozen resnet18 on 2,000 images.

Writes bench/scale/summary.{csv,md}. ``--image-size`` trades fidelity for time (224 is the model's
own size; resnet18 trains at ~13 images/s on 2 cores at 224 px, ~54 at 112).
Usage:
    python scripts/bench_scale.py                                  # the targets' settings (slow on 2 cores)
    python scripts/bench_scale.py --image-size 112 --parts rows workers
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

SHAPES = ["circle", "square", "triangle"]
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (40, 70, 220)}


def make_manifest(folder: Path, rows: int, seed: int = 0) -> Path:
    """rows JPEGs (made once, reused by smaller manifests: their rows are the first ones) + a CSV."""
    from PIL import Image, ImageDraw

    path = folder / f"manifest_{rows}.csv"
    if path.is_file():
        return path
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(rows):
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        file = folder / "images" / f"{i:06d}.jpg"
        if not file.is_file():
            image = Image.fromarray(rng.integers(0, 80, (128, 128, 3), dtype=np.uint8))
            draw, (x, y), r = ImageDraw.Draw(image), rng.integers(30, 98, 2), int(rng.integers(15, 30))
            box = [x - r, y - r, x + r, y + r]
            {
                "circle": draw.ellipse,
                "square": draw.rectangle,
                "triangle": lambda b, fill, draw=draw: draw.polygon(
                    [(b[0], b[3]), (b[2], b[3]), ((b[0] + b[2]) / 2, b[1])], fill=fill
                ),
            }[shape](box, fill=COLOURS[colour])
            image.save(file, quality=90)
        split = "train" if i % 20 < 18 else ("val" if i % 20 == 18 else "test")
        records.append(
            {
                "image": f"images/{i:06d}.jpg",
                "text": f"a photo of a {shape} number {i % 97}",
                "label": colour,
                "split": split,
            }
        )
    pd.DataFrame(records).to_csv(path, index=False)
    return path


def tree_pss_mb(pid: int) -> float:
    """Memory of a process and all its descendants, in MB: the sum of their proportional set sizes
    (PSS, from /proc/<pid>/smaps_rollup), so pages a forked DataLoader worker shares with the trainer
    count once, not once per process as a sum of RSS would."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    children.setdefault(int(handle.read().rsplit(")", 1)[1].split()[1]), []).append(
                        int(entry)
                    )
            except OSError:
                continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo += children.get(p, [])
        try:
            with open(f"/proc/{p}/smaps_rollup") as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith("Pss:"))
        except (OSError, StopIteration):
            continue
    return total / 1024


def mmtrain(run_dir: Path, *overrides: str) -> tuple[dict, float]:
    """One mmtrain run (reused when its run dir holds a finished one) -> (run.json, peak tree PSS MB)."""
    done = run_dir / "bench.json"
    if done.is_file():
        saved = json.loads(done.read_text())
        return saved["info"], saved["rss"]
    script = Path(sys.executable).with_name("mmtrain")
    process = subprocess.Popen(
        [str(script), f"hydra.run.dir={run_dir}", *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    peak = [0.0]

    def sample():
        while process.poll() is None:
            peak[0] = max(peak[0], tree_pss_mb(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    output = process.communicate()[0]
    sampler.join()
    if process.returncode:
        sys.exit(f"mmtrain {' '.join(overrides)} failed:\n{output[-3000:]}")
    info = json.loads((run_dir / "run.json").read_text())
    done.write_text(json.dumps({"info": info, "rss": peak[0]}))
    return info, peak[0]


def train_steps(run_dir: Path) -> int:
    frame = pd.read_csv(run_dir / "metrics.csv")
    return int(frame["step"].max()) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/scale"))
    parser.add_argument("--rows", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--parts", nargs="+", default=["rows", "workers", "store"])
    args = parser.parse_args()
    out = args.out.absolute()
    data = out / "data"
    cache = out / "cache"  # the frozen MiniLM's store, shared by the runs of parts 1 and 2
    common = [
        "data=manifest",
        "data.targets.label.column=label",
        "data.split_column=split",
        "encoder/image=timm",
        "encoder.image.name=resnet18",
        f"encoder.image.image_size={args.image_size}",
        "trainer.max_epochs=1",
        "data.batch_size=32",
        f"cache_dir={cache}",
        "robustness=false",
    ]
    rows_out = []
    if "rows" in args.parts:
        for n in args.rows:
            info, rss = mmtrain(
                out / f"rows_{n}_{args.image_size}", *common, f"data.path={make_manifest(data, n)}"
            )
            train_rows = int(n * 0.9)
            rows_out += [
                (f"peak memory (PSS, trainer + workers), {n} rows ({args.image_size} px)", f"{rss:.0f} MB"),
                (
                    f"train phase per train row, {n} rows",
                    f"{1000 * info['wall_s']['train'] / train_rows:.1f} ms",
                ),
            ]
        first, last = args.rows[0], args.rows[-1]
        runs = {
            n: json.loads((out / f"rows_{n}_{args.image_size}" / "bench.json").read_text())
            for n in (first, last)
        }

        def per_row(n: int) -> float:
            return runs[n]["info"]["wall_s"]["train"] / n

        rows_out += [
            (f"peak memory ratio {last} / {first} rows", f"{runs[last]['rss'] / runs[first]['rss']:.2f}"),
            (
                f"time per row ratio {last} / {first}",
                f"{per_row(last) / per_row(first):.2f}",
            ),
        ]
    if "workers" in args.parts:
        n = args.rows[0]
        rate = {}
        for workers in (0, 2):
            run_dir = out / f"workers_{workers}_{n}_{args.image_size}"
            info, _ = mmtrain(
                run_dir, *common, f"data.path={make_manifest(data, n)}", f"data.num_workers={workers}"
            )
            rate[workers] = train_steps(run_dir) / info["wall_s"]["train"]
            rows_out.append((f"train steps/s, num_workers={workers} ({n} rows)", f"{rate[workers]:.3f}"))
        rows_out.append(("steps/s ratio workers 2 / 0", f"{rate[2] / rate[0]:.2f}"))
    if "store" in args.parts:
        rows_out += store_part(out, make_manifest(data, 3000))
    frame = pd.DataFrame(rows_out, columns=["measure", "value"])
    frame.to_csv(out / "summary.csv", index=False)
    table = "\n".join(["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows_out])
    (out / "summary.md").write_text(table + "\n")
    print(table)


def store_part(out: Path, manifest: Path) -> list[tuple[str, str]]:
    """Cold vs warm data preparation (the featurize phase) with a fresh store, in this process."""
    import logging

    from hydra import compose, initialize_config_module

    from mmtrain.train import Phases, prepare

    logging.basicConfig(level=logging.WARNING)
    frame = pd.read_csv(manifest)
    images = manifest.with_name("images_2000.csv")
    frame.head(2000).to_csv(images, index=False)
    cases = {
        "frozen MiniLM, 3000 captions": [f"data.path={manifest}", "modalities=[text]"],
        "frozen resnet18, 2000 images (224 px)": [
            f"data.path={images}",
            "modalities=[image]",
            "encoder/image=timm",
            "encoder.image.freeze=true",
        ],
    }
    rows = []
    for name, overrides in cases.items():
        cache = out / "store" / name.split(",")[0].replace(" ", "_")
        shutil.rmtree(cache, ignore_errors=True)  # the first run starts cold
        seconds = []
        for _ in range(2):
            with initialize_config_module("mmtrain.conf", version_base="1.3"):
                cfg = compose(
                    "train",
                    overrides=[
                        "data=manifest",
                        "+data.targets.label.column=label",
                        "data.split_column=split",
                        f"cache_dir={cache}",
                        f"paths.output_dir={out / 'store' / 'run'}",
                        *overrides,
                    ],
                )
            phases, start = Phases(), time.perf_counter()
            prepare(cfg, phases=phases)
            seconds.append((phases["featurize"], time.perf_counter() - start))
        (cold, cold_all), (warm, warm_all) = seconds
        rows += [
            (f"featurize phase, {name}: first run / warm store", f"{cold:.1f} s / {warm:.3f} s"),
            (f"speed-up of the featurize phase, {name}", f"{cold / warm:.0f}x"),
            (
                f"whole preparation incl. reading data and loading models, {name}: first / warm",
                f"{cold_all:.1f} s / {warm_all:.1f} s ({cold_all / warm_all:.1f}x)",
            ),
        ]
    return rows


if __name__ == "__main__":
    main()
