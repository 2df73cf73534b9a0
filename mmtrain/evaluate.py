"""Evaluating a trained model: on the run's own splits at the end of training (``train.run``), or on
any labelled file (``mmtrain-evaluate run=<run dir> data.path=<file>``). Writes metrics.json,
confusion matrices, the analysis behind the run report (per-class scores, reliability,
per-modality contribution, optionally robustness) and report.md."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from mmtrain.evaluation import analysis
from mmtrain.evaluation.calibration import fit_checked
from mmtrain.data.feature_store import trainer_device
from mmtrain.core.errors import build
from mmtrain.tasks import TASKS, labelled

log = logging.getLogger(__name__)


def load_weights(module, ckpt_path: str) -> dict:
    """The checkpoint's weights and calibration into ``module``; returns the checkpoint."""
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    module.load_state_dict(module.restore(checkpoint))
    return checkpoint


def calibrate(module, datamodule, ckpt_path: str, settings: dict, device="cpu", precision: str | None = None) -> dict:
    """Fit each task's calibration (temperature, thresholds) on the val split with the weights of
    ``ckpt_path``, and write it into that checkpoint (atomically), which predict then uses."""
    checkpoint = load_weights(module, ckpt_path)
    outputs, targets, _ = analysis.run(module.model, datamodule.loader("val", shard=False), device, precision=precision)
    module.calibration = {t: fit_checked(TASKS.get(s["type"]), *labelled(s["type"], outputs[None][t], targets[t]),
                                         settings) for t, s in module.tasks.items()}
    for task, calibration in module.calibration.items():
        if calibration.get("note"):
            log.warning("Calibration of %s: %s.", task, calibration["note"])
    checkpoint["calibration"] = module.calibration
    save_checkpoint(checkpoint, ckpt_path)
    log.info("Calibration fitted on val: %s", module.calibration)
    return module.calibration


def save_checkpoint(checkpoint: dict, path: str) -> None:
    handle, tmp = tempfile.mkstemp(dir=Path(path).parent, suffix=".tmp")
    os.close(handle)
    torch.save(checkpoint, tmp)
    os.chmod(tmp, 0o644)  # mkstemp makes it private; checkpoints are as readable as Lightning's
    os.replace(tmp, path)


def evaluate_splits(trainer, module, datamodule, ckpt_path: str | None, splits: list[str],
                    val: bool = True) -> tuple[dict, dict]:
    """Metrics (``<split>/<task>/<metric>``) and confusion matrices of each split, through
    Lightning's test loop (under DDP each row is counted once)."""
    trainer.loggers = []  # the final evaluation is metrics.json, not one more epoch in metrics.csv
    metrics, confusion = {}, {}
    if val:
        trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    for split in splits:
        datamodule.test_split = module.test_split = split
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics.update(module.test_results)
        confusion[split] = module.test_confusion
    if val:
        metrics.update(module.val_results)
    return metrics, confusion


def analyse(out_dir: Path, module, datamodule, split: str, robustness: bool = False, device="cpu",
            precision: str | None = None) -> None:
    """The run report's tables for ``split``, as CSV and PNG in ``out_dir``: per_class, reliability,
    contribution, fusion_weights (for a fusion with modality weights) and (with ``robustness``) the
    robustness sweep."""
    from mmtrain.reporting import results

    model, tasks, calibration = module.model, module.tasks, module.calibration
    loader = datamodule.loader(split, shard=False)
    rows, outputs, targets, weights = analysis.contributions(model, loader, tasks, device, precision)
    results.write_rows(out_dir / "contribution.csv", rows)
    results.plot_contributions(rows, out_dir / "contribution.png")
    if weights:
        results.write_rows(out_dir / "fusion_weights.csv", weights)
        results.plot_fusion_weights(weights, out_dir / "fusion_weights.png", type(model.fusion).__name__)
    results.write_rows(out_dir / "per_class.csv", analysis.per_class(tasks, outputs, targets, calibration))
    bins = analysis.reliability(tasks, outputs, targets, calibration)
    if bins:
        results.write_rows(out_dir / "reliability.csv", bins)
        results.plot_reliability(bins, out_dir / "reliability.png")
    if robustness:
        types = datamodule.table.modality_types
        pre = {m: e.get("preprocessing") for m, e in module.hparams.model_cfg["encoder"].items()}
        rows = analysis.robustness(model, loader, tasks, types, pre, device, precision=precision)
        results.write_rows(out_dir / "robustness.csv", rows)
        results.plot_robustness(rows, out_dir / "robustness.png")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """mmtrain-evaluate: the model of ``cfg.run`` on the labelled file ``cfg.data.path`` (the
    targets' columns must be there; no train rows needed). The rows of each split (the run's split
    column, if the file has it) are reported as ``<split>/...``, all rows otherwise as ``eval/...``."""
    from mmtrain.reporting import results
    from mmtrain.predict import load_model

    start = time.perf_counter()
    out_dir = Path(cfg.paths.output_dir)
    model = load_model(cfg.run)
    table, _ = model.table_of(cfg.data.path, on_bad_row=cfg.data.on_bad_row, report_dir=out_dir,
                              evaluate=True, split_column=cfg.data.split_column)
    splits = list(dict.fromkeys(table.split))
    datamodule = model.datamodule(table, cfg.data.batch_size, cfg.cache_dir, splits[0], trainer_device(cfg.trainer))
    trainer = build(cfg.trainer, "trainer", callbacks=[], logger=False)
    metrics, confusion = evaluate_splits(trainer, model.module, datamodule, None, splits, val=False)
    if trainer.is_global_zero:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        results.write_confusions(out_dir, confusion, model.tasks)
        analyse(out_dir, model.module, datamodule, "test" if "test" in splits else splits[0], cfg.robustness,
                precision=cfg.trainer.precision)
        results.write_run_info(out_dir, kind="evaluate", module=model.module, table=table, checkpoint=model.path,
                               data_path=str(cfg.data.path), wall={"evaluate": time.perf_counter() - start})
        from mmtrain.reporting.run_report import write

        write(out_dir)
        results.print_summary(metrics, out_dir, None)
    return metrics
