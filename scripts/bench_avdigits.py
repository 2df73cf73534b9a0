"""avdigits targets: test and test_speaker (an unseen speaker) accuracy for image-only, audio-only and
each fusion strategy, with the hard (noisy, occluded) or the clean image column.

Needs the prepared data (scripts/prepare_avdigits.py; a copy is in ../shared/data/avdigits). Writes
results.csv, summary.csv and summary.png to --out and prints the summary. Usage:
    python scripts/bench_avdigits.py --data ../shared/data/avdigits/manifest.csv --image-column image_hard
    python scripts/bench_avdigits.py --image-column image --variants "image only" late "bottleneck + ogm_ge"
Extra overrides for every run: --set trainer.max_epochs=20 encoder.audio.augment.time_mask=10
Runs add to --out's results.csv: a rerun replaces only the rows of its own variants and seeds (rows measured
with other --data, --image-column or --set are left out), so the summary can be built up over several
invocations (pass --fresh to start over).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

VARIANTS = {
    "image only": ["modalities=[image]", "fusion=early"],
    "audio only": ["modalities=[audio]", "fusion=early"],
    "early": ["fusion=early"],
    "late": ["fusion=late"],
    "intermediate": ["fusion=intermediate"],
    "hybrid": ["fusion=hybrid"],
    "gated": ["fusion=gated"],
    "tensor": ["fusion=tensor"],
    "low_rank": ["fusion=low_rank"],
    "bottleneck": ["fusion=bottleneck"],
    "film": ["fusion=film"],
    "attention_pool": ["fusion=attention_pool"],
}
# "<variant> + <extra>", e.g. "bottleneck + ogm_ge"
EXTRAS = {"aux_heads": ["model.aux_heads=true"], "ogm_ge": ["model.aux_heads=true", "balance=ogm_ge"]}


def overrides_of(name: str) -> list[str]:
    base, _, extra = name.partition(" + ")
    if base not in VARIANTS or (extra and extra not in EXTRAS):
        raise SystemExit(
            f"unknown variant {name!r}: use one of {list(VARIANTS)}, optionally + {' | '.join(EXTRAS)}"
        )
    return VARIANTS[base] + EXTRAS.get(extra, [])


SPLITS = ("test", "test_speaker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/avdigits/manifest.csv")
    parser.add_argument("--image-column", default="image_hard", choices=["image", "image_hard"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        help=f"of {list(VARIANTS)}, each optionally + {' | '.join(EXTRAS)}",
    )
    parser.add_argument("--set", nargs="*", default=[], help="extra overrides for every run")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--fresh", action="store_true", help="drop earlier results in --out")
    args = parser.parse_args()
    out = args.out or Path("bench") / f"avdigits_{args.image_column}"

    import pandas as pd
    from hydra import compose, initialize_config_module

    from mmtrain.train import run

    results = out / "results.csv"
    # rows measured with other data or overrides do not compare: only those with the same settings are kept
    settings = " ".join([str(Path(args.data).absolute()), args.image_column, *args.set])
    earlier = (
        pd.read_csv(results)
        if results.exists() and not args.fresh
        else pd.DataFrame(columns=["variant", "seed", "settings"])
    )
    other = earlier["settings"] != settings if "settings" in earlier else pd.Series(True, index=earlier.index)
    if other.any():
        print(f"{results}: leaving out {int(other.sum())} earlier rows measured with other settings")
    rerun = earlier["variant"].isin(args.variants) & earlier["seed"].isin(args.seeds)
    rows = earlier[~rerun & ~other].to_dict("records")
    for seed in args.seeds:
        for name in args.variants:
            out_dir = out / "runs" / f"{name.replace(' ', '_')}_seed{seed}"
            shutil.rmtree(out_dir, ignore_errors=True)  # a run dir with a checkpoint would be resumed
            overrides = [
                "data=avdigits",
                f"data.path={Path(args.data).absolute()}",
                f"++data.modalities.image.column={args.image_column}",
                *overrides_of(name),
                f"seed={seed}",
                f"paths.output_dir={out_dir}",
                "trainer.enable_progress_bar=false",
                *args.set,
            ]
            with initialize_config_module("mmtrain.conf", version_base="1.3"):
                cfg = compose("train", overrides=overrides)
            metrics = run(cfg)
            rows.append({"variant": name, "seed": seed, "settings": settings, **metrics})
            out.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(results, index=False)

    frame = pd.DataFrame(rows)
    columns = [f"{split}/digit/acc" for split in SPLITS]
    summary = frame.groupby("variant", sort=False)[columns].agg(["mean", "std"])
    summary.to_csv(out / "summary.csv")
    plot(summary, out / "summary.png", args.image_column)
    pd.set_option("display.width", 200)
    print(summary.round(4).to_string())
    acc = summary["test_speaker/digit/acc"]["mean"]
    single = acc.reindex(["image only", "audio only"]).max()  # NaN only when neither ran
    fused = acc.drop(["image only", "audio only"], errors="ignore")
    if len(fused):
        print(
            f"test_speaker: best fusion {fused.idxmax()} {fused.max():.4f}, best single modality "
            f"{single:.4f}, gain {fused.max() - single:+.4f}"
        )


def plot(summary, png: Path, image_column: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(max(8.0, 0.6 * len(summary) + 2), 4.8))
    x = np.arange(len(summary))
    for i, split in enumerate(SPLITS):
        stats = summary[f"{split}/digit/acc"]
        ax.bar(x + (i - 0.5) * 0.4, stats["mean"], 0.4, yerr=stats["std"].fillna(0), label=split)
    ax.set_xticks(x, summary.index, rotation=35, ha="right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("accuracy")
    ax.set_title(f"avdigits ({image_column})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
