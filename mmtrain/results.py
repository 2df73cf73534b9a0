"""What a person reads at the end of a run: a metrics table on the console, learning curves and
confusion matrices as PNG (beside their CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def print_summary(metrics: dict[str, float], out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Test metrics (best checkpoint)", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(metrics.items()):
        table.add_row(name, f"{value:.4f}")
    console = Console()
    console.print(table)
    console.print(f"Run dir: {out_dir}", soft_wrap=True)


def plot_curves(metrics_csv: Path, png: Path) -> None:
    """Per-epoch train/val loss and the val metrics, from Lightning's CSV log."""
    import matplotlib
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = pd.read_csv(metrics_csv)
    if "epoch" not in frame:
        return
    per_epoch = frame.groupby("epoch").first()
    losses = [c for c in per_epoch.columns if c.endswith("loss")]
    scores = [c for c in per_epoch.columns if c.startswith("val/") and not c.endswith("loss")
              and "/recall/" not in c]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for column in losses:
        axes[0].plot(per_epoch.index, per_epoch[column], marker="o", label=column)
    for column in scores:
        axes[1].plot(per_epoch.index, per_epoch[column], marker="o", label=column)
    for ax, title in zip(axes, ("loss", "validation metrics")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
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
