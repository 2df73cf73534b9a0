"""run(cfg): build the data, model and trainer from a composed config, train, test, write results.

Hydra-free apart from ``instantiate``: tests call it with a config from ``hydra.compose``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from mmtrain.data.datamodule import MultimodalDataModule
from mmtrain.data.table import MultimodalTable
from mmtrain.errors import ConfigError
from mmtrain.losses import CLASS_WEIGHTS, class_weights, positive_weights
from mmtrain.model import check_shapes
from mmtrain.module import MultimodalModule

log = logging.getLogger(__name__)
MODEL_KEYS = ("encoder", "fusion", "head", "loss", "optim")


def run(cfg: DictConfig) -> dict[str, float]:
    """Train (unless ``train=false``) and test; returns the flat test metrics of metrics.json."""
    validate(cfg)
    out_dir = Path(cfg.paths.output_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    table: MultimodalTable = instantiate(cfg.data.source)
    modalities, tasks = list(cfg.modalities), task_specs(cfg, table)
    model_cfg = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in MODEL_KEYS}
    module = MultimodalModule(model_cfg, modalities, tasks)
    for m in modalities:
        rate = getattr(module.model.encoders[m], "sample_rate", None)
        if rate and table.sample_rate and rate != table.sample_rate:
            raise ConfigError(f"encoder.{m}.sample_rate={rate} differs from the data's {table.sample_rate} Hz: "
                              f"set encoder.{m}.sample_rate={table.sample_rate}.")
    datamodule = MultimodalDataModule(
        table, modalities, list(tasks), {m: module.model.encoders[m].featurize for m in modalities},
        batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers, sampler=cfg.data.sampler,
        balance_task=cfg.data.balance_task, seed=cfg.seed)
    datamodule.setup()
    check_shapes(module.model, datamodule.batch(table.indices("train")[:4]))

    callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values()]
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path)
    if cfg.train:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        test_ckpt = "best" if trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path else None
    else:
        test_ckpt = ckpt_path
    trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt, verbose=False)
    metrics = dict(module.test_results)
    if trainer.is_global_zero:
        write_results(out_dir, cfg, metrics, module.test_confusion, tasks)
    return metrics


def validate(cfg: DictConfig) -> None:
    """Checks that need no data, so a bad value fails in a second, before anything heavy runs."""
    declared = list(cfg.data.modalities)
    if cfg.modalities is None or len(cfg.modalities) == 0:
        raise ConfigError(f"modalities is empty: list at least one of {declared} (e.g. modalities=[text]).")
    unknown = [m for m in cfg.modalities if m not in declared]
    if unknown:
        raise ConfigError(f"modalities={list(cfg.modalities)}: {unknown} not in data '{cfg.data.name}', "
                          f"which has {declared}.")
    if not cfg.head:
        raise ConfigError("head is empty: choose at least one task head (e.g. head=sentiment).")
    missing = [t for t in cfg.head if t not in cfg.data.tasks]
    if missing:
        raise ConfigError(f"head.{missing[0]}: the data '{cfg.data.name}' has no task '{missing[0]}' "
                          f"(its tasks: {list(cfg.data.tasks)}); remove it or pick head=<one of those>.")
    monitor_task = str(cfg.monitor).split("/")[1] if str(cfg.monitor).count("/") >= 2 else None
    if monitor_task not in cfg.head and cfg.monitor != "val/loss":
        raise ConfigError(f"monitor={cfg.monitor} is not a metric of this run's tasks {list(cfg.head)}: "
                          f"use val/<task>/<metric> (e.g. monitor=val/{next(iter(cfg.head))}/...) or val/loss.")
    weights = cfg.loss.class_weights
    if isinstance(weights, str) and weights not in CLASS_WEIGHTS:
        raise ConfigError(f"loss.class_weights={weights} is not known: use one of {', '.join(CLASS_WEIGHTS)}, "
                          f"or a list with one weight per class.")
    lr = cfg.optim.optimizer.lr
    if not lr > 0:
        raise ConfigError(f"optim.optimizer.lr={lr} must be positive (e.g. optim.optimizer.lr=1e-3).")
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision.startswith("16") and not torch.cuda.is_available():
        raise ConfigError(f"trainer.precision={precision} needs a CUDA GPU and none is visible: use "
                          f"trainer.precision=bf16-mixed (runs on CPU) or 32-true.")
    if cfg.data.sampler == "balanced" and cfg.data.balance_task not in cfg.head:
        raise ConfigError(f"data.sampler=balanced balances data.balance_task={cfg.data.balance_task}, "
                          f"which is not a task of this run {list(cfg.head)}.")


def task_specs(cfg: DictConfig, table: MultimodalTable) -> dict[str, dict]:
    """{task: {"type", "classes", "weights"}}, with class or positive weights from the train split."""
    train = table.indices("train")
    specs = {}
    for task in cfg.head:
        spec = table.tasks[task]
        y = table.targets[task][train]
        weights = None
        if spec.type == "multiclass":
            counts = np.bincount(y, minlength=len(spec.classes))
            weights = class_weights(counts, cfg.loss.class_weights, cfg.loss.beta)
        elif spec.type == "multilabel":
            weights = positive_weights(y.sum(0), len(y), cfg.loss.pos_weight)
        specs[task] = {"type": spec.type, "classes": spec.classes, "weights": weights}
    return specs


def resolve_ckpt_path(ckpt_path) -> str | None:
    if ckpt_path in (None, ""):
        return None
    path = Path(str(ckpt_path)).expanduser().absolute()
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path}: no such file. Point it at a checkpoint, e.g. "
                          f"<run dir>/checkpoints/last.ckpt.")
    return str(path)


def write_results(out_dir: Path, cfg: DictConfig, metrics: dict, confusion: dict, tasks: dict) -> None:
    from mmtrain.results import plot_confusion, plot_curves, print_summary

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    OmegaConf.save(cfg, out_dir / "config.yaml", resolve=True)
    if (out_dir / "metrics.csv").exists():
        plot_curves(out_dir / "metrics.csv", out_dir / "curves.png")
    for task, matrix in confusion.items():
        plot_confusion(np.asarray(matrix), tasks[task]["classes"], out_dir / f"confusion_{task}")
    print_summary(metrics, out_dir)
