"""Text recipes on a real labelled manifest (default: ../shared/data/tfns, finance tweets, 3 classes):
each configuration is one `mmtrain` command, timed from the command to its metrics table; the
table has val and test accuracy and macro-F1, the wall time and the training steps per second.
Settings are chosen on val (docs/recipes.md); test is reported, never selected on.
Usage:
    python scripts/bench_text_recipes.py [--configs fast balanced ...] [--data <manifest>] \
        [--out bench/text_recipes]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tfns" / "manifest.csv"
CONFIGS = {
    "fast": ["preset=fast"],
    "balanced": ["preset=balanced"],
    "best": ["preset=best"],
    # bf16-mixed vs fp32 at the same settings, one epoch each (steps/s and accuracy)
    "balanced 1 epoch, bf16": ["preset=balanced", "trainer.max_epochs=1"],
    "balanced 1 epoch, fp32": ["preset=balanced", "trainer.max_epochs=1", "trainer.precision=32-true"],
    # losses for imbalanced classes, on the frozen encoder (cheap to compare)
    "fast, balanced weights": ["preset=fast", "loss.class_weights=balanced"],
    "fast, focal 2": ["preset=fast", "loss.focal_gamma=2"],
    "fast, logit adjust 1": ["preset=fast", "loss.logit_adjust_tau=1"],
}
KEYS = {
    "val acc": "val/{t}/acc",
    "val F1": "val/{t}/f1_macro",
    "test acc": "test/{t}/acc",
    "test F1": "test/{t}/f1_macro",
}


def run(name: str, overrides: list[str], data: Path, task: str, text: str, out: Path) -> dict:
    run_dir = out / name.replace(" ", "_").replace(",", "").replace("(", "").replace(")", "")
    args = [
        "data=manifest",
        f"data.path={data}",
        "data.split_column=split",
        f"data.modalities.text.column={text}",
        f"data.targets.{task}.column=label",
        *overrides,
        f"hydra.run.dir={run_dir}",
        "trainer.enable_progress_bar=false",
    ]
    if not (run_dir / "metrics.json").is_file():
        start = time.perf_counter()
        result = subprocess.run(
            [str(Path(sys.executable).with_name("mmtrain")), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "HYDRA_FULL_ERROR": "1"},
        )
        if result.returncode:
            sys.exit(f"{name} failed:\n{result.stderr[-3000:]}")
        (run_dir / "wall.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    info = json.loads((run_dir / "run.json").read_text())
    import torch

    steps = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, mmap=True)["global_step"]
    row = {
        "config": name,
        **{k: metrics[v.format(t=task)] for k, v in KEYS.items()},
        "wall s": float((run_dir / "wall.txt").read_text()),
        "train s": info["wall_s"]["train"],
        "epochs": info["epochs"]["trained"],
        "steps/s": steps / info["wall_s"]["train"],
        "command": " ".join(overrides),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), help=f"of {list(CONFIGS)}")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--out", type=Path, default=Path("bench/text_recipes"))
    args = parser.parse_args()
    out = args.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    rows = [
        run(name, CONFIGS[name], args.data.absolute(), args.task, args.text_column, out)
        for name in args.configs
    ]
    import pandas as pd

    frame = pd.DataFrame(rows)
    frame.to_csv(out / "summary.csv", index=False)
    lines = [
        "| config | val acc | val F1 | test acc | test F1 | wall | epochs | steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['config']} | {r['val acc']:.3f} | {r['val F1']:.3f} "
        f"| {r['test acc']:.3f} | {r['test F1']:.3f} | "
        f"{r['wall s']:.0f} s | {r['epochs']} | {r['steps/s']:.2f} |"
        for r in rows
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        ax.scatter(r["wall s"] / 60, r["test F1"], s=40)
        ax.annotate(
            r["config"],
            (r["wall s"] / 60, r["test F1"]),
            fontsize=7,
            xytext=(4, 2),
            textcoords="offset points",
        )
    ax.set_xlabel("wall time, command to metrics (min, 2 CPU cores)")
    ax.set_ylabel("test macro-F1")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "summary.png", dpi=110)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
