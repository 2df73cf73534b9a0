"""Leaderboard across the jobs of a sweep: ``mmtrain-report <sweep dir>``.

Reads each job's overrides (``.hydra/overrides.yaml``) and its ``metrics.json`` (or ``failed.json``),
groups jobs that differ only in ``seed`` (or ``cv.fold``), and writes ``leaderboard.csv``,
``leaderboard.md`` and
``leaderboard.png`` (mean ± std of the optimized metric per configuration, a dot per run) into the
sweep dir, with each configuration's trainable / total parameters, training seconds and peak memory
(from the jobs' run.json).
Runs by itself at the end of every multirun (``LeaderboardCallback``).
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback

from mmtrain.core import artefacts

DEFAULT_METRIC = "val/sentiment/f1_macro"


def collect(sweep_dir: Path) -> tuple[list[dict], list[str]]:
    """One dict per job (dir, config, seed, metrics or error), and the overrides common to all jobs.

    A job's ``config`` is its overrides that vary across the sweep, less ``seed``: jobs that differ
    only in seed share a config.
    """
    found = []
    for overrides_file in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")):
        overrides = [
            o for o in yaml.safe_load(overrides_file.read_text()) or [] if not o.startswith("hydra.")
        ]
        found.append((overrides_file.parent.parent, overrides))
    common = [o for o in (found[0][1] if found else []) if all(o in other for _, other in found)]
    jobs = []
    for job_dir, overrides in found:
        config = [
            o for o in overrides if o not in common and not o.startswith(("seed=", "cv.fold=", "trial="))
        ]
        seed = next((o.split("=", 1)[1] for o in overrides if o.startswith("seed=")), "")
        job = {
            "dir": str(job_dir.relative_to(sweep_dir)),
            "config": " ".join(config) or "(defaults)",
            "seed": seed,
            "metrics": None,
            "error": None,
            "pruned": (job_dir / artefacts.PRUNED).is_file(),  # stopped early by the study's pruner
        }
        job["cost"] = cost(job_dir / artefacts.RUN_INFO)
        metrics, failed = job_dir / artefacts.METRICS, job_dir / artefacts.FAILED
        if metrics.is_file() and not (failed.is_file() and failed.stat().st_mtime > metrics.stat().st_mtime):
            job["metrics"] = json.loads(metrics.read_text())
        elif failed.is_file():  # the latest attempt in this dir failed
            job["error"] = json.loads((job_dir / artefacts.FAILED).read_text())["error"]
        else:
            job["error"] = "no metrics.json (still running, killed, or crashed before writing)"
        jobs.append(job)
    return jobs, common


COSTS = ("trainable params", "total params", "train s", "peak MB")


def cost(run_json: Path) -> dict[str, float]:
    """A job's size, training time and peak memory, from its run.json (empty without one)."""
    if not run_json.is_file():
        return {}
    info = json.loads(run_json.read_text())
    params = info.get("parameters", {})
    return dict(
        zip(
            COSTS,
            (
                params.get("trainable", 0),
                params.get("trainable", 0) + params.get("frozen", 0),
                info.get("wall_s", {}).get("train", 0.0),
                info.get("peak_rss_mb", 0.0),
            ),
        )
    )


def optimized_metric(sweep_dir: Path) -> tuple[str, str]:
    """The jobs' ``optimized_metric`` and ``optimized_mode`` (max or min), from the resolved
    config.yaml a finished job writes (Hydra's copy keeps interpolations such as ${data.monitor})."""
    for config_file in sorted(sweep_dir.glob("*/config.yaml")) + sorted(
        sweep_dir.glob("**/.hydra/config.yaml")
    ):
        config = yaml.safe_load(config_file.read_text()) or {}
        metric, mode = config.get("optimized_metric", DEFAULT_METRIC), config.get("optimized_mode", "max")
        if "${" not in f"{metric}{mode}":
            return metric, mode
    return DEFAULT_METRIC, "max"


def leaderboard(jobs: list[dict], metric: str, mode: str = "max") -> list[dict]:
    """Rows per configuration, best first: runs, failed, mean and std of every metric."""
    rows: dict[str, dict] = {}
    for job in jobs:
        row = rows.setdefault(
            job["config"], {"config": job["config"], "runs": 0, "failed": 0, "pruned": 0, "values": {}}
        )
        row["pruned"] += job.get("pruned", False)
        if job["metrics"] is None or not math.isfinite(job["metrics"].get(metric, math.nan)):
            row["failed"] += 1
            continue
        row["runs"] += 1
        for key, value in job["metrics"].items():
            row["values"].setdefault(key, []).append(value)
        for key, value in job.get("cost", {}).items():
            row.setdefault("costs", {}).setdefault(key, []).append(value)
    table = []
    for row in rows.values():
        out = {"config": row["config"], "runs": row["runs"], "failed": row["failed"], "pruned": row["pruned"]}
        out.update({key: statistics.fmean(values) for key, values in row.get("costs", {}).items()})
        for key, values in sorted(row["values"].items()):
            out[f"{key} mean"] = statistics.fmean(values)
            out[f"{key} std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        table.append(out)
    sign = 1 if mode == "min" else -1
    return sorted(table, key=lambda r: (f"{metric} mean" not in r, sign * r.get(f"{metric} mean", 0.0)))


def write(sweep_dir: Path) -> Path:
    import pandas as pd

    jobs, common = collect(sweep_dir)
    if not jobs:
        raise SystemExit(
            f"mmtrain-report: no job found under {sweep_dir} (looked for */.hydra/overrides.yaml)."
        )
    metric, mode = optimized_metric(sweep_dir)
    table = leaderboard(jobs, metric, mode)
    pd.DataFrame(table).to_csv(sweep_dir / "leaderboard.csv", index=False)
    lines = [
        f"# Leaderboard: {sweep_dir}",
        "",
        f"Sorted by `{metric}` (mean ± std over seeds). "
        f"Every job also had: `{' '.join(common) or '(nothing)'}`.",
        "",
        f"| rank | config | runs | failed | pruned | {metric} | trainable / total params | train s "
        "| peak MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rank, row in enumerate(table, 1):
        mean = row.get(f"{metric} mean")
        spread = f" ± {row[f'{metric} std']:.4f}" if row["runs"] > 1 else ""  # one run has no spread
        score = "—" if mean is None else f"{mean:.4f}{spread}"
        size = (
            f"{row['trainable params']:,.0f} / {row['total params']:,.0f}" if "total params" in row else "—"
        )
        spent = f"{row['train s']:.1f} | {row['peak MB']:.0f}" if "train s" in row else "— | —"
        lines.append(
            f"| {rank} | `{row['config']}` | {row['runs']} | {row['failed']} | {row['pruned']} | {score} | "
            f"{size} | {spent} |"
        )
    lines += study_best(sweep_dir)
    failed = [job for job in jobs if job["metrics"] is None]
    if failed:
        lines += ["", "## Failed jobs", ""] + [
            f"- `{j['dir']}` (`{j['config']}` seed {j['seed'] or '-'}): {j['error']}" for j in failed
        ]
    (sweep_dir / "leaderboard.md").write_text("\n".join(lines) + "\n")
    plot(table, metric, sweep_dir / "leaderboard.png", jobs)
    return sweep_dir / "leaderboard.md"


def study_best(sweep_dir: Path) -> list[str]:
    """The Optuna study's best trial, as its drivers last wrote it (optimization_results.yaml)."""
    found = [
        yaml.safe_load(p.read_text()) or {}
        for p in sorted(sweep_dir.glob("**/" + artefacts.OPTIMIZATION_RESULTS))
    ]
    found = [r for r in found if "best_value" in r]
    if not found:
        return []
    best = max(found, key=lambda r: r.get("trials", 0))  # the latest view of the study
    params = " ".join(f"{k}={v}" for k, v in best["best_params"].items())
    return [
        "",
        f"Study `{best.get('study')}` ({best.get('trials')} trials over {len(found)} driver(s)): best trial "
        f"{best['best_trial']}, value {best['best_value']:.4f}: `{params}`.",
    ]


def plot(table: list[dict], metric: str, png: Path, jobs: list[dict] = ()) -> None:
    """Bars: mean ± std per configuration; a dot per seed or fold over each bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [r for r in table if f"{metric} mean" in r][::-1]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(scored) + 1.5))
    ax.barh(
        [r["config"] for r in scored],
        [r[f"{metric} mean"] for r in scored],
        xerr=[r[f"{metric} std"] for r in scored],
        color="tab:blue",
        alpha=0.6,
        capsize=3,
    )
    for y, row in enumerate(scored):
        values = [
            v
            for j in jobs
            if j["config"] == row["config"] and j["metrics"]
            for v in runs_of(j["metrics"], metric)
        ]
        ax.scatter(values, [y] * len(values), color="black", s=12, zorder=3)
    ax.set_xlabel(f"{metric} (mean ± std over seeds; dots: each run)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def runs_of(metrics: dict, metric: str) -> list[float]:
    """A job's values of ``metric``: each cross-validation fold's (fold_<i>/<metric>), else its own."""
    folds = [v for k, v in metrics.items() if k.startswith("fold_") and k.split("/", 1)[1] == metric]
    return [v for v in folds or [metrics.get(metric, math.nan)] if math.isfinite(v)]


class LeaderboardCallback(Callback):
    """Hydra callback: writes the leaderboard when a multirun ends."""

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not any(sweep_dir.glob("**/.hydra/overrides.yaml")):
            return
        path = write(sweep_dir)
        print(path.read_text(), file=sys.stderr)
