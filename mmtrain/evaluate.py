"""``mmtrain-evaluate run=<run dir> data.path=<file>``: a trained model on any labelled file. Writes
metrics.json, confusion matrices, the analysis behind the run report (per-class scores, reliability,
per-modality contribution, optionally robustness) and report.md (evaluation/ does the work)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from omegaconf import DictConfig

from mmtrain.core import artefacts
from mmtrain.core.errors import build
from mmtrain.evaluation.analysis import analyse
from mmtrain.evaluation.splits import evaluate_splits
from mmtrain.runtime import devices

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """mmtrain-evaluate: the model of ``cfg.run`` on the labelled file ``cfg.data.path`` (the
    targets' columns must be there; no train rows needed). The rows of each split (the run's split
    column, if the file has it) are reported as ``<split>/...``, all rows otherwise as ``eval/...``."""
    from mmtrain.inference import load_model
    from mmtrain.reporting import results

    start = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    model = load_model(cfg.run)
    if not hasattr(model, "module"):  # an ensemble or model=gbm: no network to run a trainer on
        return evaluate_predictions(cfg, model, out_dir)
    table, _ = model.table_of(
        cfg.data.path,
        on_bad_row=cfg.data.on_bad_row,
        report_dir=out_dir,
        evaluate=True,
        split_column=cfg.data.split_column,
    )
    splits = list(dict.fromkeys(table.split))
    device = devices.device(cfg.trainer)
    datamodule = model.datamodule(table, cfg.data.batch_size, cfg.cache_dir, splits[0], device)
    # in the precision the model was trained in (kept in its checkpoint), as predict does
    trainer = build(cfg.trainer, "trainer", callbacks=[], logger=False, precision=model.precision)
    metrics, confusion = evaluate_splits(trainer, model.module, datamodule, None, splits, val=False)
    if trainer.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / artefacts.METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        results.write_confusions(out_dir, confusion, model.tasks)
        analyse(
            out_dir,
            model.module,
            datamodule,
            "test" if "test" in splits else splits[0],
            cfg.robustness,
            trainer.strategy.root_device,
            model.precision,
        )
        results.write_run_info(
            out_dir,
            kind="evaluate",
            module=model.module,
            table=table,
            checkpoint=model.path,
            data_path=str(cfg.data.path),
            wall={"evaluate": time.perf_counter() - start},
        )
        from mmtrain.reporting.run_report import write

        write(out_dir)
        results.print_summary(metrics, out_dir, None)
    return metrics


def evaluate_predictions(cfg: DictConfig, model, out_dir: Path) -> dict[str, float]:
    """An ensemble dir or a model=gbm run on a labelled file: the predictions mmtrain-predict makes for
    its rows, scored against their targets with the run's metrics (per split, as for a network)."""
    from mmtrain.data.files import locate
    from mmtrain.data.manifest import read_manifest
    from mmtrain.evaluation import predictions
    from mmtrain.reporting import results, run_report

    path = Path(str(cfg.data.path)).expanduser()
    reader = model.models[0] if hasattr(model, "models") else model  # reads the targets as training did
    table, kept = reader.table_of(path, cfg.data.on_bad_row, out_dir, True, cfg.data.split_column)
    frame = read_manifest(path).iloc[kept].reset_index(drop=True)
    device = devices.named("auto")
    predicted = model.predict(frame, locate(path)[2], "error", cfg.data.batch_size, cfg.cache_dir, device)
    tasks, metrics = model.tasks, {}
    for split in dict.fromkeys(table.split):
        rows = table.split == split
        values = {t: predictions.values(predicted[rows], t, s) for t, s in tasks.items()}
        targets = predictions.targets_frame(tasks, {t: table.targets[t][rows] for t in tasks})
        metrics.update(predictions.metrics(tasks, values, targets, split))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / artefacts.METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    run_report.write_metrics(out_dir, f"Evaluation of `{cfg.run}` on `{path.name}`", metrics)
    results.print_summary(metrics, out_dir, None)
    return metrics
