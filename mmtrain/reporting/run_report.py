"""report.md: what a person reads about one run (training or evaluation), with the PNGs beside it.

Written by plain code from the run dir's files (run.json, metrics.json, metrics.csv/curves.png,
per_class.csv, confusion_*.png, reliability.csv/png, contribution.csv/png, fusion_weights.csv/png,
robustness.csv/png), so ``python -m mmtrain.reporting.run_report <run dir>`` writes it again at any time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from mmtrain.core import artefacts


def _table(frame: pd.DataFrame, floats: str = "{:.4f}") -> list[str]:
    def cell(v):
        if isinstance(v, float):
            return "—" if math.isnan(v) else floats.format(v)
        return str(v)

    lines = ["| " + " | ".join(str(c) for c in frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return lines + [""]


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


def write(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    info = json.loads((run_dir / artefacts.RUN_INFO).read_text())
    metrics = (
        json.loads((run_dir / artefacts.METRICS).read_text())
        if (run_dir / artefacts.METRICS).is_file()
        else {}
    )
    lines = [
        f"# {'Training' if info['kind'] == 'train' else 'Evaluation'} report",
        "",
        f"Run dir `{run_dir}`"
        + (f"; data `{info['data']}`" if info.get("data") else "")
        + (f"; model `{info['checkpoint']}`" if info.get("checkpoint") else "")
        + ".",
        "",
    ]
    lines += _what(info)
    lines += _data(info)
    if (run_dir / artefacts.CURVES).is_file():
        lines += ["## Learning curves", "", "![learning curves](curves.png)", ""]
    lines += _metrics(metrics, run_dir)
    lines += _calibration(info, metrics, run_dir)
    lines += _contribution(run_dir, info)
    lines += _fusion_weights(run_dir)
    lines += _importance(run_dir)
    lines += _robustness(run_dir)
    lines += [
        "---",
        f"Written by `python -m mmtrain.reporting.run_report {run_dir}` from this run dir's files.",
    ]
    path = run_dir / artefacts.REPORT
    path.write_text("\n".join(lines) + "\n")
    return path


def write_metrics(run_dir: Path, title: str, metrics: dict) -> Path:
    """report.md of a run dir that holds metrics only (an ensemble or trees evaluated on a file)."""
    path = Path(run_dir) / artefacts.REPORT
    path.write_text("\n".join([f"# {title}", "", *_metrics(metrics, Path(run_dir))]) + "\n")
    return path


def _what(info: dict) -> list[str]:
    lines = ["## What was trained", ""]
    frame = pd.DataFrame(
        [
            {
                "modality": m["name"],
                "type": m["type"],
                "columns": ", ".join(
                    v if isinstance(v, str) else ", ".join(v)
                    for k, v in m["columns"].items()
                    if k != "type" and v
                ),
                "encoder": m["encoder"]
                + (
                    " (pretrained" + (", frozen)" if m["frozen"] else ", fine-tuned)")
                    if m["pretrained"]
                    else ""
                ),
            }
            for m in info["modalities"]
        ]
    )
    lines += _table(frame)
    tasks = ", ".join(
        f"{t} ({s['type']}" + (f", {len(s['classes'])} classes)" if s["classes"] else ")")
        for t, s in info["tasks"].items()
    )
    params = info["parameters"]
    lines += [
        f"- Fusion: {info['fusion']}; tasks: {tasks}.",
        f"- Parameters: {params['trainable']:,} trainable, {params['frozen']:,} frozen.",
    ]
    epochs = info.get("epochs") or {}
    if epochs:
        lines.append(
            f"- Epochs: {epochs.get('trained')} trained, best checkpoint at epoch {epochs.get('best')}."
        )
    wall = info.get("wall_s") or {}
    if wall:
        lines.append(
            f"- Wall time: {_seconds(sum(wall.values()))} ("
            + ", ".join(f"{k} {_seconds(v)}" for k, v in wall.items())
            + ")."
        )
    memory = f"- Peak memory: {info['peak_rss_mb']:.0f} MB resident"
    memory += f", {info['peak_gpu_mb']:.0f} MB on the GPU." if "peak_gpu_mb" in info else "."
    return lines + [memory, ""]


def _data(info: dict) -> list[str]:
    splits = info["splits"]
    lines = ["## Data", ""]
    modalities = [m["name"] for m in info["modalities"]]
    frame = pd.DataFrame(
        [
            {"split": s, "rows": d["rows"], **{f"without {m}": d["missing"].get(m, 0) for m in modalities}}
            for s, d in splits.items()
        ]
    )
    lines += _table(frame)
    unlabelled = {t: n for d in splits.values() for t, n in (d.get("no_target") or {}).items()}
    if unlabelled:
        lines += [
            "Rows without a target, left out of that task's loss and metrics: "
            + ", ".join(f"`{t}` {n}" for t, n in unlabelled.items())
            + ".",
            "",
        ]
    if info.get("columns"):
        lines += [
            (
                "What each column of the file was taken for (`missing`: share of empty or missing cells; "
                "`sentinels`: cells of `data.na_values` such as `?` read as missing):"
            ),
            "",
        ]
        columns = pd.DataFrame(info["columns"])
        lines += _table(columns.assign(missing=columns["missing"].map(lambda v: f"{v:.1%}")))
    for reason, n in (info.get("dropped") or {}).items():
        lines += [f"{n} rows were left out before training: {reason}.", ""]
    for task, spec in info["tasks"].items():
        if not spec["classes"]:
            continue
        rows = []
        for split, d in splits.items():
            counts = d["classes"].get(task, {})
            total = max(1, d["rows"])
            rows.append(
                {
                    "split": split,
                    **{
                        c: f"{counts.get(c, 0)} ({100 * counts.get(c, 0) / total:.0f} %)"
                        for c in spec["classes"]
                    },
                }
            )
        lines += [
            f"Class balance of `{task}`{' (rows with each label)' if spec['type'] == 'multilabel' else ''}:",
            "",
        ]
        lines += _table(pd.DataFrame(rows))
    return lines


def _metrics(metrics: dict, run_dir: Path) -> list[str]:
    if not metrics:
        return []
    splits = list(dict.fromkeys(k.split("/")[0] for k in metrics))
    names = list(dict.fromkeys("/".join(k.split("/")[1:]) for k in metrics))
    frame = pd.DataFrame(
        [{"metric": n, **{s: metrics.get(f"{s}/{n}", math.nan) for s in splits}} for n in names]
    )
    lines = ["## Metrics", "", "Of the best checkpoint (its weights, and the calibration fitted on val).", ""]
    lines += _table(frame)
    per_class = run_dir / artefacts.PER_CLASS
    if per_class.is_file() and per_class.stat().st_size > 1:
        table = pd.read_csv(per_class)
        if len(table):
            lines += [
                "Per class, on the first test split, of the predictions `mmtrain-predict` makes "
                "(calibrated, with the saved thresholds):",
                "",
            ]
            lines += _table(table)
    for png in sorted(run_dir.glob("confusion_*.png")):
        lines += [f"![{png.stem}]({png.name})", ""]
    return lines


def _calibration(info: dict, metrics: dict, run_dir: Path) -> list[str]:
    calibration = info.get("calibration") or {}
    if not calibration:
        return []
    lines = [
        "## Calibration",
        "",
        "Fitted on the validation split after training (temperature scaling, Guo et al. "
        "2017; per-label F1 thresholds for multilabel tasks); `mmtrain-predict` uses it.",
        "",
    ]
    for task, values in calibration.items():
        if not values:
            continue
        parts = [f"temperature {values['temperature']:.3f}"] if "temperature" in values else []
        if values.get("thresholds"):
            parts.append("thresholds " + ", ".join(f"{t:.2f}" for t in values["thresholds"]))
        if values.get("threshold") is not None:
            parts.append(f"decision threshold {values['threshold']}")
        eces = [
            f"{s}: ECE {metrics[f'{s}/{task}/ece_raw']:.4f} -> {metrics[f'{s}/{task}/ece']:.4f}, "
            f"NLL {metrics[f'{s}/{task}/nll_raw']:.4f} -> {metrics[f'{s}/{task}/nll']:.4f}"
            for s in dict.fromkeys(k.split("/")[0] for k in metrics)
            if f"{s}/{task}/ece" in metrics
        ]
        note = f" Note: {values['note']}." if values.get("note") else ""
        lines.append(
            f"- `{task}`: {'; '.join(parts)}."
            + (f" Raw -> calibrated: {'; '.join(eces)}." if eces else "")
            + note
        )
    if (run_dir / f"{artefacts.RELIABILITY}.png").is_file():
        lines += ["", "![reliability diagram](reliability.png)"]
    return lines + [""]


def _contribution(run_dir: Path, info: dict) -> list[str]:
    path = run_dir / f"{artefacts.CONTRIBUTION}.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    lines = [
        "## What each modality contributes",
        "",
        "The first test split's metric with modalities masked through the present mask, exactly as a missing "
        "modality is (no retraining): `full` = all modalities, "
        "`none` = every one masked, `drop_one` = full minus "
        "the metric without this modality, `shapley` = its "
        "exact Shapley value over all 2^M subsets (they sum to "
        "full − none). A model trained without `model.modality_dropout` "
        "has rarely seen a modality missing, so "
        "these numbers describe how it copes with absence as much as what the modality adds.",
        "",
    ]
    lines += _table(frame)
    if (run_dir / f"{artefacts.CONTRIBUTION}.png").is_file():
        lines += ["![per-modality contribution](contribution.png)", ""]
    return lines


def _fusion_weights(run_dir: Path) -> list[str]:
    path = run_dir / f"{artefacts.FUSION_WEIGHTS}.csv"
    if not path.is_file():
        return []
    lines = [
        "## How the fusion weighs the modalities",
        "",
        "The fusion's own per-sample weights on the first test split (gated: the mean gate value, "
        "attention_pool: the attention weight, late / hybrid: each member's weight in the combination), "
        "summing to 1 over a row's present modalities: where the model looks, which need not be what helps "
        "(see the contributions above).",
        "",
    ]
    lines += _table(pd.read_csv(path))
    return lines + ["![fusion weights](fusion_weights.png)", ""]


def _importance(run_dir: Path) -> list[str]:
    path = run_dir / f"{artefacts.IMPORTANCE}.csv"
    if not path.is_file():
        return []
    rows = pd.read_csv(path)
    shares = rows.groupby("modality", sort=False)["share"].sum().reset_index()
    return (
        ["## What the trees use", "", "Share of the trees' gain per modality:", ""]
        + _table(shares)
        + ["Top features:", ""]
        + _table(rows.head(10)[["feature", "modality", "share"]])
        + [f"![importance]({artefacts.IMPORTANCE}.png)", ""]
    )


def _robustness(run_dir: Path) -> list[str]:
    path = run_dir / f"{artefacts.ROBUSTNESS}.csv"
    if not path.is_file():
        return []
    frame = pd.read_csv(path)
    rows = []
    for (metric, modality, kind), group in frame.groupby(["metric", "modality", "kind"], sort=False):
        group = group.sort_values("level")
        levels, values = group["level"].to_numpy(), group["value"].to_numpy()
        area = float(
            ((values[1:] + values[:-1]) / 2 * (levels[1:] - levels[:-1])).sum() / (levels[-1] - levels[0])
        )
        rows.append(
            {
                "metric": metric,
                "modality": modality,
                "kind": kind,
                "clean": float(values[0]),
                "worst": float(values[-1]),
                "mean over levels (area)": area,
            }
        )
    lines = [
        "## Robustness",
        "",
        "MultiBench's protocol: one modality at a time corrupted (Gaussian noise on its "
        "featurized values, or token dropping for text) at "
        "levels 0-0.9, or missing in a share 0-1 of the rows; "
        "the others clean. Seeded.",
        "",
    ]
    lines += _table(pd.DataFrame(rows))
    return lines + ["![robustness](robustness.png)", ""]
