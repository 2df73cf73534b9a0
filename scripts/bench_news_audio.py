"""Quality targets on news_audio: fused vs unimodal macro-F1, and class weighting vs minority recall.

Runs the full default config (3000 samples, frozen MiniLM, audio CNN) through ``mmtrain.train.run``
for each variant and seed, then writes results.csv, summary.csv and summary.png to --out and prints
the summary. Usage:
    python scripts/bench_news_audio.py --seeds 0 1 2 --out bench/news_audio
"""

from __future__ import annotations

import argparse
from pathlib import Path

VARIANTS = {
    "intermediate (text+audio)": ["fusion=intermediate"],
    "early (text+audio)": ["fusion=early"],
    "late (text+audio)": ["fusion=late"],
    "hybrid (text+audio)": ["fusion=hybrid"],
    "text only": ["fusion=intermediate", "modalities=[text]"],
    "audio only": ["fusion=intermediate", "modalities=[audio]"],
    "intermediate, class_weights=balanced": ["fusion=intermediate", "loss.class_weights=balanced"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("bench/news_audio"))
    args = parser.parse_args()

    import pandas as pd
    from hydra import compose, initialize_config_module

    from mmtrain.train import run

    rows = []
    for seed in args.seeds:
        for name in args.variants:
            out_dir = args.out / "runs" / f"{len(rows):02d}_seed{seed}"
            with initialize_config_module("mmtrain.conf", version_base="1.3"):
                cfg = compose(
                    "train",
                    overrides=[
                        *VARIANTS[name],
                        f"seed={seed}",
                        f"paths.output_dir={out_dir}",
                        "trainer.enable_progress_bar=false",
                    ],
                )
            metrics = run(cfg)
            rows.append({"variant": name, "seed": seed, **metrics})
            pd.DataFrame(rows).to_csv(args.out / "results.csv", index=False)

    frame = pd.DataFrame(rows)
    columns = ["test/sentiment/f1_macro", "test/sentiment/recall/negative", "test/sentiment/recall/positive"]
    summary = frame.groupby("variant", sort=False)[columns].agg(["mean", "std"])
    summary.to_csv(args.out / "summary.csv")
    plot(summary, args.out / "summary.png")
    pd.set_option("display.width", 200)
    print(summary.round(3).to_string())
    f1 = summary["test/sentiment/f1_macro"]["mean"]
    fused = f1.get("intermediate (text+audio)")
    unimodal = max(f1.get("text only", float("nan")), f1.get("audio only", float("nan")))
    print(f"intermediate macro-F1 {fused:.3f}, best unimodal {unimodal:.3f}, gain {fused - unimodal:+.3f}")
    recall = summary["test/sentiment/recall/negative"]["mean"]
    if "intermediate, class_weights=balanced" in recall:
        print(
            f"negative-class recall: none {recall['intermediate (text+audio)']:.3f}, "
            f"balanced {recall['intermediate, class_weights=balanced']:.3f}"
        )


def plot(summary, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f1 = summary["test/sentiment/f1_macro"]
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.barh(f1.index[::-1], f1["mean"][::-1], xerr=f1["std"].fillna(0)[::-1], color="tab:blue")
    ax.set_xlabel("test macro-F1 (mean ± std over seeds)")
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
