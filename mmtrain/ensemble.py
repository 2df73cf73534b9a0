"""``mmtrain-ensemble runs=<folder | [run dirs]>``: many finished runs into one model, fitted on their saved
val predictions (no model runs again). Writes ``<folder>/ensemble/`` (or ``output=``), a run dir like any
other: metrics.json (val and test, the runs' keys), predictions/, report.md, config.yaml, and the members'
models packed in members/ (so the dir predicts alone, copied anywhere)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError
from mmtrain.core.files import atomic_write
from mmtrain.ensembling import members as found
from mmtrain.ensembling import selection
from mmtrain.evaluation import predictions
from mmtrain.reporting import ensemble_report
from mmtrain.reporting.results import print_summary
from mmtrain.tasks import TASKS

log = logging.getLogger(__name__)


def runs_of(cfg: DictConfig) -> list[Path]:
    given = cfg.runs
    runs = list(given) if isinstance(given, (list, ListConfig)) else str(given).split(",")
    return [Path(str(r).strip()).expanduser() for r in runs if str(r).strip()]


def output_of(runs: list[Path], output) -> Path:
    """``output=``, else <the folder given>/ensemble (for several: their common folder's)."""
    if output:
        return Path(str(output)).expanduser()
    common = Path(os.path.commonpath([r.absolute() for r in runs]))
    return common / "ensemble"


def ensemble(cfg: DictConfig) -> dict[str, float]:
    start = time.perf_counter()
    runs = runs_of(cfg)
    if not runs:
        raise ConfigError("runs= is empty: give a sweep dir, a run dir or a list, e.g. runs=multirun/posts.")
    out = output_of(runs, cfg.output)
    settings = cfg.ensemble
    if settings.method not in selection.METHODS:
        raise ConfigError(f"ensemble.method={settings.method} is not known: use greedy or stack.")
    members, skipped = found.find(runs)
    members = [m for m in members if out.absolute() not in [m.path.absolute(), *m.path.absolute().parents]]
    for name, why in skipped:
        log.warning("Skipped %s: %s", name, why)
    found.check(members)
    log.info("Ensembling %d runs (%s) into %s", len(members), settings.method, out)
    facts = members[0].facts
    tasks = facts["tasks"]
    fitted, values = {}, {"val": {}, **{s: {} for s in members[0].tests}}
    for task, spec in tasks.items():
        metric, mode = objective(facts["monitor"], task, spec)
        targets = predictions.targets(members[0].val, task, spec)
        vals = [m.values("val", task) for m in members]
        if settings.method == "greedy":
            weights = selection.greedy(vals, selection.Scorer(spec, targets, metric, mode), settings.size)
            fitted[task] = {"weights": weights.tolist(), "metric": metric}
            values["val"][task] = selection.average(vals, weights)
        else:
            params, oof = selection.stack(
                spec, vals, targets, settings.stack_folds, settings.stack_strength, cfg.seed
            )
            fitted[task] = {"stack": params, "metric": metric}
            values["val"][task] = oof
        for split in members[0].tests:
            values[split][task] = selection.combine(
                spec, fitted[task], [m.values(split, task) for m in members]
            )
    metrics = {}
    for split, per_task in values.items():
        frame = members[0].val if split == "val" else members[0].tests[split]
        metrics.update(predictions.metrics(tasks, per_task, frame, split))
    write(out, cfg, members, skipped, fitted, values, metrics, time.perf_counter() - start)
    print_summary(metrics, out, None)
    return metrics


def objective(monitor: list, task: str, spec: dict) -> tuple[str, str]:
    """The metric greedy selection optimises for ``task``: the runs' monitored one when it is this
    task's (val/<task>/<metric>), else the task type's main metric (maximised)."""
    name, mode = (monitor + ["max"])[:2] if monitor else ("", "max")
    parts = str(name).split("/")
    if len(parts) == 3 and parts[0] == "val" and parts[1] == task:
        return parts[2], mode
    return TASKS.get(spec["type"]).main_metric, "max"


def write(out: Path, cfg, members, skipped, fitted, values, metrics, wall: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    packed = []
    for i, member in enumerate(members):
        folder = out / artefacts.MEMBERS / f"member_{i}"
        models = [
            pack(model, folder / (model.name if len(member.models) > 1 else "")) for model in member.models
        ]
        packed.append({"name": member.name, "models": [str(m.relative_to(out)) for m in models]})
    facts = members[0].facts
    spec = {
        "method": cfg.ensemble.method,
        "members": packed,
        "tasks": facts["tasks"],
        "combine": fitted,
        "skipped": [{"name": n, "why": w} for n, w in skipped],
    }
    atomic_write(out / artefacts.ENSEMBLE, lambda tmp: tmp.write_text(json.dumps(spec, indent=2) + "\n"))
    (out / artefacts.METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    # the ensemble's own settings (the members' are in their packed checkpoints)
    OmegaConf.save(OmegaConf.masked_copy(cfg, ["runs", "output", "ensemble", "seed"]), out / artefacts.CONFIG)
    folder = out / artefacts.PREDICTIONS
    predictions.write_tasks(folder, {t: dict(s) for t, s in facts["tasks"].items()}, facts["monitor"], facts)
    for split, per_task in values.items():
        frame = members[0].val if split == "val" else members[0].tests[split]
        predictions.combined_frame(facts["tasks"], per_task, frame).to_parquet(
            folder / f"{split}.parquet", index=False
        )
    ensemble_report.write(out, members, spec, values, metrics, wall)


def pack(run_dir: Path, folder: Path) -> Path:
    """A member's model files, inside the ensemble dir (hard links where the file system allows, else
    copies): best.ckpt of a neural run, gbm/ of a model=gbm run. -> what load_model takes."""
    folder.mkdir(parents=True, exist_ok=True)
    sources = [run_dir / artefacts.GBM] if (run_dir / artefacts.GBM).is_dir() else []
    sources = sources or [run_dir / artefacts.CHECKPOINTS / artefacts.BEST]
    for source in sources:
        if not source.exists():
            raise ConfigError(
                f"runs: {run_dir} has no {source.name}: it cannot be a member (train it again)."
            )
        target = folder / source.name
        if source.is_dir():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(source, target, copy_function=link_or_copy)
        else:
            target.unlink(missing_ok=True)
            link_or_copy(source, target)
            return target
    return folder


def link_or_copy(source, target) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
