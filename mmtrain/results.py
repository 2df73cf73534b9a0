"""What a person reads at the end of a run: a metrics table on the console, learning curves and
confusion matrices as PNG (beside their CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def print_summary(metrics: dict[str, float], out_dir: Path, best_epoch: int | None) -> None:
    from rich.console import Console
    from rich.table import Table

    title = "Metrics of the best checkpoint" + (f" (epoch {best_epoch})" if best_epoch is not None else "")
    table = Table(title=title, show_header=True)
    splits = list(dict.fromkeys(k.split("/")[0] for k in metrics))  # test splits first, val last
    splits = [s for s in splits if s != "val"] + ["val"]
    table.add_column("metric")
    for split in splits:
        table.add_column(split, justify="right")
    for name in sorted(k[len(splits[0]) + 1:] for k in metrics if k.startswith(splits[0] + "/")):
        cells = [metrics.get(f"{split}/{name}") for split in splits]
        table.add_row(name, *("" if v is None else f"{v:.4f}" for v in cells))
    console = Console()
    console.print(table)
    console.print(f"Run dir: {out_dir}", soft_wrap=True)


def plot_curves(metrics_csv: Path, png: Path, tasks: list[str], best_epoch: int | None) -> None:
    """Per-epoch train/val loss, then one panel of val metrics per task, from Lightning's CSV log;
    a dashed line marks the epoch of the best checkpoint."""
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.read_csv(metrics_csv)
    if "epoch" not in frame:
        return
    per_epoch = frame.groupby("epoch").first()
    panels = [("loss", [c for c in per_epoch.columns if c.endswith("loss")])]
    panels += [(f"val {task}", [c for c in per_epoch.columns if c.startswith(f"val/{task}/") and "/recall/" not in c])
               for task in tasks]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, (title, columns) in zip(axes[0], panels):
        for column in columns:
            label = column if title == "loss" else column.split("/")[-1]  # train/loss vs val/loss
            ax.plot(per_epoch.index, per_epoch[column], marker="o", label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label="best checkpoint")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, classes: list[str], stem: Path) -> None:
    """Writes <stem>.csv (rows = true class, columns = predicted) and <stem>.png."""
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pd.DataFrame(matrix, index=classes, columns=classes).to_csv(stem.with_suffix(".csv"))
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2, 1.2 * len(classes) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, int(count), ha="center", va="center",
                color="white" if count > matrix.max() / 2 else "black")
    ax.set_title(f"{stem.name} (test)")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    plt.close(fig)
