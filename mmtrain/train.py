"""run(cfg): build the data, model and trainer from a composed config, train, test, write results.

Hydra-free apart from ``instantiate``: tests call it with a config from ``hydra.compose``.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import lightning as L
import numpy as np
from omegaconf import DictConfig, OmegaConf

from mmtrain.data.datamodule import MultimodalDataModule
from mmtrain.data.table import MultimodalTable
from mmtrain.errors import ConfigError, build
from mmtrain.checks import validate
from mmtrain.losses import class_weights, positive_weights
from mmtrain.model import check_shapes
from mmtrain.module import MultimodalModule

log = logging.getLogger(__name__)
# Lightning adds its own console handler; Hydra's root handlers already print (and file) its records.
logging.getLogger("lightning.pytorch").handlers.clear()
# Hydra's files in the run dir are expected beside Lightning's metrics.csv.
warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
# Noise from inside Lightning that a user can do nothing about.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
    lambda record: "litlogger" not in record.getMessage())
MODEL_KEYS = ("encoder", "fusion", "head", "loss", "optim")


def run(cfg: DictConfig) -> dict[str, float]:
    """Train (unless ``train=false``) and test; returns the flat test metrics of metrics.json."""
    module, datamodule = prepare(cfg)
    out_dir = Path(cfg.paths.output_dir)
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.callbacks or {}).items()]
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.logger or {}).items()]
    trainer: L.Trainer = build(cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False)
    ckpt_path = resolve_ckpt_path(cfg.ckpt_path)
    if cfg.train:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        best = trainer.checkpoint_callback and trainer.checkpoint_callback.best_model_path
        test_ckpt = "best" if best else None
    else:
        test_ckpt = ckpt_path
    trainer.test(module, datamodule=datamodule, ckpt_path=test_ckpt, verbose=False)
    metrics = dict(module.test_results)
    if trainer.is_global_zero:
        write_results(out_dir, cfg, metrics, module.test_confusion, module.tasks)
    return metrics


def prepare(cfg: DictConfig) -> tuple[MultimodalModule, MultimodalDataModule]:
    """Validated config -> the LightningModule and the datamodule, featurized and shape-checked."""
    validate(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    table: MultimodalTable = build(cfg.data.source, "data.source")
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
    return module, datamodule


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
