"""Every fusion on news_audio over seeds, as one Hydra multirun (the per-job overhead of a sweep is
part of what is measured), against the unimodal baselines.

Runs ``mmtrain -m fusion=<all of mmtrain/conf/fusion> seed=...`` and ``mmtrain -m modalities=[text],[audio]
seed=...`` (the default model otherwise, with its feature store warm from an earlier run), then writes
bench/fusions/summary.{csv,md,png}: test macro-F1 mean ± std per fusion with a dot per seed,
trainable / total parameters, fit seconds, the margin over the best single modality, and the sweep's
total wall and per-job overhead (job wall - fit time). Finished sweeps are reused (delete the dir to rerun).
Usage:
    python scripts/bench_fusions.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

METRIC = "test/sentiment/f1_macro"


def sweep(folder: Path, *overrides: str) -> float:
    """One multirun into ``folder`` -> its wall seconds (reused when it finished before)."""
    done = folder / "wall.json"
    if done.is_file():
        return json.loads(done.read_text())["wall"]
    start = time.perf_counter()
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("mmtrain")),
            "-m",
            *overrides,
            f"hydra.sweep.dir={folder}",
            "trainer.enable_progress_bar=false",
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.exit(f"mmtrain -m {' '.join(overrides)} failed:\n{result.stderr[-3000:]}")
    wall = time.perf_counter() - start
    done.write_text(json.dumps({"wall": wall}))
    return wall


def jobs(folder: Path) -> list[dict]:
    from mmtrain.reporting.leaderboard import collect

    found, _ = collect(folder)
    for job in found:
        job["run"] = json.loads((folder / job["dir"] / "run.json").read_text())
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("bench/fusions"))
    args = parser.parse_args()
    import pandas as pd

    out = args.out.absolute()
    import mmtrain.conf

    fusions = sorted(p.stem for p in (Path(mmtrain.conf.__file__).parent / "fusion").glob("*.yaml"))
    seeds = "seed=" + ",".join(map(str, args.seeds))
    wall = sweep(out / "sweep", "fusion=" + ",".join(fusions), seeds)
    sweep(out / "unimodal", "modalities=[text],[audio]", seeds)
    fused, single = jobs(out / "sweep"), jobs(out / "unimodal")
    rows = []
    for job in fused + single:
        run = job["run"]
        rows.append(
            {
                "config": job["config"],
                "seed": job["seed"],
                METRIC: job["metrics"][METRIC],
                "trainable params": run["parameters"]["trainable"],
                "total params": run["parameters"]["trainable"] + run["parameters"]["frozen"],
                "fit s": run["wall_s"]["train"],
                "job s (phases)": sum(run["wall_s"].values()),
            }
        )
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "results.csv", index=False)
    summary = (
        frame.groupby("config", sort=False)
        .agg(
            mean=(METRIC, "mean"),
            std=(METRIC, "std"),
            trainable=("trainable params", "first"),
            total=("total params", "first"),
            fit_s=("fit s", "mean"),
        )
        .reset_index()
    )
    best_single = summary[summary.config.str.startswith("modalities=")]["mean"].max()
    summary["margin over best single"] = summary["mean"] - best_single
    summary = summary.sort_values("mean", ascending=False)
    summary.to_csv(out / "summary.csv", index=False)
    fit = frame[~frame.config.str.startswith("modalities=")]["fit s"]
    overhead = wall / len(fit) - fit.mean()
    lines = [
        f"# Fusions on news_audio, seeds {args.seeds} (`python scripts/bench_fusions.py`)",
        "",
        f"Best single modality: {best_single:.4f}. Sweep of {len(fit)} jobs: {wall:.0f} s wall, "
        f"{wall / len(fit):.1f} s per job, mean fit {fit.mean():.1f} s: per-job overhead (job wall - fit) "
        f"{overhead:.1f} s.",
        "",
        "| config | test macro-F1 | margin over best single | trainable / total params | fit s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| `{r.config}` | {r['mean']:.4f} ± {r['std']:.4f} | {r['margin over best single']:+.4f} | "
        f"{r.trainable:,} / {r.total:,} | {r.fit_s:.1f} |"
        for _, r in summary.iterrows()
    ]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    plot(summary, frame, out / "summary.png", best_single)
    print("\n".join(lines))


def plot(summary, frame, png: Path, best_single: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = list(summary.config)[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.4 * len(order) + 1.5))
    ax.barh(
        order,
        list(summary.set_index("config").loc[order, "mean"]),
        xerr=list(summary.set_index("config").loc[order, "std"]),
        color="tab:blue",
        alpha=0.6,
        capsize=3,
    )
    for y, config in enumerate(order):
        values = frame[frame.config == config][METRIC]
        ax.scatter(values, [y] * len(values), color="black", s=12, zorder=3)
    ax.axvline(best_single + 0.05, color="tab:red", linestyle="--", label="best single modality + 0.05")
    ax.set_xlabel(f"{METRIC} (mean ± std; dots: seeds)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
