"""What a person reads at the end of a run: a metrics table on the console, learning curves and
confusion matrices as PNG (beside their CSV)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmtrain.core import artefacts
from mmtrain.tasks import TASKS


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
    for name in sorted(k[len(splits[0]) + 1 :] for k in metrics if k.startswith(splits[0] + "/")):
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
    panels += [
        (
            f"val {task}",
            [c for c in per_epoch.columns if c.startswith(f"val/{task}/") and "/recall/" not in c],
        )
        for task in tasks
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.8), squeeze=False)
    for ax, (title, columns) in zip(axes[0], panels):
        for column in columns:
            label = (
                column if title == "loss" else column.split("/", 2)[-1]
            )  # f1_macro, or text/f1_macro (aux heads)
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


def plot_confusion(matrix: np.ndarray, classes: list[str], stem: Path, split: str = "test") -> None:
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
        ax.text(
            j, i, int(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black"
        )
    ax.set_title(f"{stem.name} ({split})")
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=110)
    plt.close(fig)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_rows(path: Path, rows: list[dict]) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_csv(path, index=False)


def write_confusions(out_dir: Path, confusion: dict, tasks: dict) -> None:
    """confusion_<task>.csv/png for the first split (``test``), confusion_<task>_<split> for others."""
    for i, (split, matrices) in enumerate(confusion.items()):
        suffix = "" if split == "test" or (i == 0 and "test" not in confusion) else f"_{split}"
        for task, matrix in matrices.items():
            plot_confusion(
                np.asarray(matrix), tasks[task]["classes"], out_dir / f"confusion_{task}{suffix}", split
            )


def plot_reliability(rows: list[dict], png: Path) -> None:
    """One panel per task: accuracy against mean confidence per equal-count bin, raw and calibrated,
    with the diagonal; each calibrated point is labelled with its bin's row count."""
    plt = _pyplot()
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.2 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        for variant, colour in (("raw", "tab:red"), ("calibrated", "tab:blue")):
            chosen = [r for r in rows if r["task"] == task and r["variant"] == variant and r["count"]]
            ax.plot(
                [r["confidence"] for r in chosen],
                [r["accuracy"] for r in chosen],
                marker="o",
                color=colour,
                label=variant,
            )
            if variant == "calibrated":
                for r in chosen:
                    ax.annotate(
                        str(r["count"]),
                        (r["confidence"], r["accuracy"]),
                        textcoords="offset points",
                        xytext=(4, -10),
                        fontsize=7,
                        color=colour,
                    )
        ax.set_title(f"{task}: reliability (equal-count bins, rows per bin shown)", fontsize=9)
        ax.set_xlabel("confidence")
        ax.set_ylabel("accuracy")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_contributions(rows: list[dict], png: Path) -> None:
    """Bars of each modality's Shapley value and drop-one, one panel per task metric."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        chosen = [r for r in rows if r["metric"] == metric]
        x = np.arange(len(chosen))
        ax.bar(x - 0.2, [r["shapley"] for r in chosen], 0.4, label="Shapley", color="tab:blue")
        ax.bar(x + 0.2, [r["drop_one"] for r in chosen], 0.4, label="drop-one", color="tab:orange")
        ax.set_xticks(x, [r["modality"] for r in chosen])
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"{metric}: full {chosen[0]['full']:.3f}, none {chosen[0]['none']:.3f}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_importance(rows: list[dict], png: Path, top: int = 20) -> None:
    """model=gbm: each modality's share of the trees' gain, and the ``top`` features."""
    plt = _pyplot()
    shares: dict[str, float] = {}
    for r in rows:
        shares[r["modality"]] = shares.get(r["modality"], 0.0) + r["share"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.3 * min(top, len(rows)) + 2.2))
    left.bar(list(shares), list(shares.values()), color="tab:blue")
    left.set_title("share of the gain per modality", fontsize=9)
    chosen = rows[:top][::-1]
    right.barh([r["feature"] for r in chosen], [r["share"] for r in chosen], color="tab:orange")
    right.set_title(f"top {len(chosen)} features (share of the gain)", fontsize=9)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_fusion_weights(rows: list[dict], png: Path, fusion: str) -> None:
    """Bars of the fusion's mean weight per modality (or member), ± one std over the rows."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3.5, 1.1 * len(rows) + 1.5), 3.4))
    ax.bar(
        [r["name"] for r in rows],
        [r["mean"] for r in rows],
        yerr=[r["std"] for r in rows],
        capsize=4,
        color="tab:green",
    )
    ax.set_ylim(0, 1)
    ax.set_ylabel("weight")
    ax.set_title(f"{fusion}\nmean weight over {rows[0]['rows']} {rows[0]['over']}", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_robustness(rows: list[dict], png: Path) -> None:
    """Metric against corruption level (noise) and missing rate, one curve per modality."""
    plt = _pyplot()
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    fig, axes = plt.subplots(len(metrics), 2, figsize=(9, 3.6 * len(metrics)), squeeze=False)
    for row_axes, metric in zip(axes, metrics):
        for ax, kind in zip(row_axes, ("noise", "missing")):
            for m in dict.fromkeys(r["modality"] for r in rows):
                chosen = sorted(
                    (r for r in rows if r["metric"] == metric and r["kind"] == kind and r["modality"] == m),
                    key=lambda r: r["level"],
                )
                ax.plot([r["level"] for r in chosen], [r["value"] for r in chosen], marker="o", label=m)
            ax.set_title(
                f"{metric}: {'noise level' if kind == 'noise' else 'share of rows missing it'}", fontsize=9
            )
            ax.set_xlabel("level" if kind == "noise" else "missing rate")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def reset_peak_memory() -> None:
    """Start a run's peak-memory count afresh: jobs of a local multirun share one process, and each
    should report its own peak (Linux: writing 5 to /proc/self/clear_refs resets VmHWM)."""
    import torch

    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> dict[str, float]:
    """Peak resident memory of this process since reset_peak_memory (VmHWM; elsewhere than Linux, since
    the process started), and of the GPU if one was used, in MB."""
    import resource

    import torch

    try:
        status = Path("/proc/self/status").read_text()
        peak = {"peak_rss_mb": int(status.split("VmHWM:")[1].split()[0]) / 1024}
    except (OSError, IndexError):
        peak = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        peak["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return peak


def data_summary(table) -> dict:
    """Per split: rows, the class (or label) counts of each task, and rows without each modality."""
    out = {}
    present = dict.fromkeys(table.split.tolist())
    for split in [s for s in ("train", "val") if s in present] + [
        s for s in present if s not in ("train", "val")
    ]:
        rows = table.indices(split)
        classes = {}
        unlabelled = {}
        for task, spec in table.tasks.items():
            y = table.targets[task][rows]
            known = TASKS.get(spec.type).known(y)
            if not known.all():
                unlabelled[task] = int((~known).sum())
                y = y[known]
            if spec.classes and y.ndim == 2:
                classes[task] = dict(zip(spec.classes, y.sum(0).astype(int).tolist()))
            elif spec.classes:
                classes[task] = dict(zip(spec.classes, np.bincount(y, minlength=len(spec.classes)).tolist()))
            else:
                classes[task] = {"mean": float(np.mean(y)), "std": float(np.std(y))}
        missing = {m: int(sum(values[i] is None for i in rows)) for m, values in table.modalities.items()}
        out[split] = {"rows": int(len(rows)), "classes": classes, "missing": missing, "no_target": unlabelled}
    return out


def write_run_info(
    out_dir: Path,
    kind: str,
    module,
    table,
    checkpoint,
    data_path: str | None = None,
    wall: dict | None = None,
    epochs: dict | None = None,
) -> None:
    """run.json: what was trained and on what, its size, time and memory (the report's facts)."""
    import json

    model = module.model
    encoders = module.hparams.model_cfg["encoder"]
    params = list(module.parameters())
    info = {
        "kind": kind,
        "checkpoint": str(checkpoint) if checkpoint else None,
        "data": data_path,
        "modalities": [
            {
                "name": m,
                "type": table.modality_types.get(m),
                "columns": module.hparams.data_spec["modalities"].get(m, {})
                if module.hparams.data_spec
                else {},
                "encoder": type(model.encoders[m]).__name__,
                "target": encoders[m].get("_target_"),
                "pretrained": bool(model.encoders[m].pretrained),
                "frozen": bool(getattr(model.encoders[m], "freeze", False)),
            }
            for m in model.modalities
        ],
        "fusion": type(model.fusion).__name__,
        "tasks": {t: {"type": s["type"], "classes": s["classes"]} for t, s in module.tasks.items()},
        "parameters": {
            "trainable": sum(p.numel() for p in params if p.requires_grad),
            "frozen": sum(
                p.numel()
                for n, p in module.named_parameters()
                if not p.requires_grad and not n.startswith("model.encoders.")
            )
            + sum(e.frozen_parameters() for e in {id(e): e for e in model.encoders.values()}.values()),
        },
        "epochs": epochs or {},
        "wall_s": wall or {},
        **peak_memory(),
        "splits": data_summary(table),
        "calibration": module.calibration,
        "columns": table.columns,
        "dropped": table.dropped,
    }
    (out_dir / artefacts.RUN_INFO).write_text(json.dumps(info, indent=2, default=str) + "\n")


def write_gbm_info(out_dir: Path, cfg, table, modalities, tasks, encoders, result, wall: dict) -> None:
    """run.json of a model=gbm run, with the facts report.md states for a network's."""
    import json

    from mmtrain.training.gbm import leaves

    spec = table.spec or {}
    pca = result["features"].pca
    info = {
        "kind": "train",
        "checkpoint": None,
        "data": cfg.data.get("path") or cfg.data.name,
        "modalities": [
            {
                "name": m,
                "type": table.modality_types[m],
                "columns": (spec.get("modalities") or {}).get(m, {}),
                "encoder": "the columns as they are"
                if table.modality_types[m] == "tabular"
                else f"mean of {encoders[m]['_target_'].rsplit('.', 1)[-1]} features"
                + (f", PCA to {len(pca[m]['components'])}" if m in pca else ""),
                "pretrained": table.modality_types[m] != "tabular",
                "frozen": True,
            }
            for m in modalities
        ],
        "fusion": f"gradient-boosted trees (LightGBM) on {len(result['names'])} features",
        "tasks": {t: {"type": s["type"], "classes": s["classes"]} for t, s in tasks.items()},
        "parameters": {"trainable": leaves(result), "frozen": 0},  # the trees' leaves
        "epochs": {},
        "wall_s": wall,
        **peak_memory(),
        "splits": data_summary(table),
        "calibration": result["calibration"],
        "columns": table.columns,
        "dropped": table.dropped,
    }
    (out_dir / artefacts.RUN_INFO).write_text(json.dumps(info, indent=2, default=str) + "\n")
