"""run(cfg): build the data, model and trainer from a composed config, train, test, write results.

Hydra-free apart from ``instantiate``: tests call it with a config from ``hydra.compose``.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from omegaconf import DictConfig, OmegaConf, open_dict

from mmtrain.config.validate import validate
from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError, build, check_arguments, summary
from mmtrain.data.datamodule import LoaderSettings, MultimodalDataModule
from mmtrain.data.feature_store import decoded_per_batch, featurizers, rank_share
from mmtrain.data.table import MultimodalTable
from mmtrain.evaluation import predictions
from mmtrain.evaluation.analysis import analyse
from mmtrain.evaluation.calibration import calibrate
from mmtrain.evaluation.splits import evaluate_splits
from mmtrain.modalities import MODALITIES
from mmtrain.model.module import MultimodalModule
from mmtrain.model.network import check_shapes
from mmtrain.reporting.results import (
    plot_curves,
    plot_importance,
    print_summary,
    reset_peak_memory,
    write_confusions,
    write_gbm_info,
    write_rows,
    write_run_info,
)
from mmtrain.reporting.run_report import write as write_report
from mmtrain.runtime import devices
from mmtrain.runtime.progress import on_terminal
from mmtrain.tasks import TASKS
from mmtrain.tasks.losses import LossSettings
from mmtrain.training import checkpoints
from mmtrain.training.averaging import finalize

log = logging.getLogger(__name__)
MODEL_KEYS = ("model", "fusion", "head", "loss", "optim")  # and "encoder", resolved per modality


class Phases(dict):
    """Wall seconds per phase of a run (prepare, featurize, train, evaluate, report)."""

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + time.perf_counter() - start


def run(cfg: DictConfig, validated: bool = False) -> dict[str, float]:
    """Train (unless ``train=false``), then calibrate on val, evaluate the best checkpoint on val and
    test, and write the report; returns the flat metrics written to metrics.json
    (``test/<task>/<metric>`` and ``val/<task>/<metric>``). With cv.folds and no cv.fold: every fold
    in turn (``cross_validate``). ``validated``: the caller (the CLI) has checked the config already."""
    if not validated:
        validate(cfg)
    devices.use_cores()
    if cfg.get("cv") and cfg.cv.folds and cfg.cv.get("fold") is None:
        return cross_validate(cfg)
    return run_one(cfg)


def cross_validate(cfg: DictConfig) -> dict[str, float]:
    """cv.folds=k: fold i trains in <run dir>/fold_<i> (its own report, checkpoints, resume). The run
    dir's metrics.json holds the mean over folds under the usual names (so sweeps and the leaderboard
    rank on it), ``<name>/std``, and each fold's value as ``fold_<i>/<name>``; cv.csv has a row per fold."""
    import copy

    import pandas as pd

    out_dir = Path(cfg.paths.output_dir)
    per_fold = []
    for fold in range(cfg.cv.folds):
        fold_cfg = copy.deepcopy(cfg)
        with open_dict(fold_cfg):
            fold_cfg.cv.fold, fold_cfg.paths.output_dir = fold, str(out_dir / f"fold_{fold}")
        log.info("Cross-validation: fold %d of %d in %s", fold + 1, cfg.cv.folds, fold_cfg.paths.output_dir)
        per_fold.append(run_one(fold_cfg))
    keys = [k for k in per_fold[0] if all(k in m for m in per_fold)]
    values = pd.DataFrame([{k: m[k] for k in keys} for m in per_fold])
    metrics = {
        **values.mean().to_dict(),
        **{f"{k}/std": v for k, v in values.std(ddof=1).to_dict().items()},
        **{f"fold_{i}/{k}": m[k] for i, m in enumerate(per_fold) for k in keys},
    }
    values.rename_axis("fold").to_csv(out_dir / artefacts.CV)
    (out_dir / artefacts.METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    OmegaConf.save(cfg, out_dir / artefacts.CONFIG, resolve=True)
    shown = [k for k in keys if k.startswith(("val/", "test/")) and k.endswith(("/f1_macro", "/acc", "/r2"))]
    for key in shown:
        log.info("cv %s: %.4f ± %.4f over %d folds", key, metrics[key], metrics[f"{key}/std"], len(per_fold))
    return metrics


def run_one(cfg: DictConfig) -> dict[str, float]:
    """One training run (one fold, with cross-validation): see ``run``."""
    reset_peak_memory()
    cfg.trainer.precision = devices.precision(cfg.trainer)  # auto -> what this device runs fastest
    if cfg.model.get("kind", "neural") == "gbm":
        return run_gbm(cfg)
    phases = Phases()
    out_dir = Path(cfg.paths.output_dir)
    log.info("Run dir: %s", out_dir)
    check_arguments(cfg.trainer, "trainer")  # a misspelt +trainer.<key> fails before the data is read
    ckpt_path = checkpoints.resolve_ckpt_path(cfg.ckpt_path, out_dir, cfg.auto_resume and cfg.train)
    with phases("prepare"):
        module, datamodule = prepare(cfg, ckpt_path, phases, validated=True)
    phases["prepare"] -= phases.get("featurize", 0.0)
    trainer, loggers = make_trainer(cfg)
    if cfg.train:
        with phases("train"):
            fit(trainer, module, datamodule, ckpt_path, out_dir, loggers)
    eval_ckpt = ckpt_path
    if cfg.train:  # without a checkpoint callback (callbacks=none) the final weights are tested
        eval_ckpt = (
            str(out_dir / artefacts.CHECKPOINTS / artefacts.BEST) if trainer.checkpoint_callback else None
        )
    with phases("evaluate"):
        if cfg.train and eval_ckpt:
            finish_best(cfg, trainer, module, datamodule, eval_ckpt)
        metrics, confusion = evaluate_splits(trainer, module, datamodule, eval_ckpt, test_splits(cfg))
    if trainer.is_global_zero:
        write_outputs(cfg, trainer, module, datamodule, eval_ckpt, metrics, confusion, loggers, phases)
    return metrics


def run_gbm(cfg: DictConfig) -> dict[str, float]:
    """model=gbm: boosted trees (training/gbm.py) on the same data, split, tasks and calibration as a
    network, written to the same kind of run dir (metrics.json, predictions/, run.json, report.md), with
    the trees in gbm/ and their feature importance per modality."""
    from mmtrain.inference.gbm import outputs_of
    from mmtrain.training import gbm

    phases, out_dir = Phases(), Path(cfg.paths.output_dir)
    log.info("Run dir: %s", out_dir)
    with phases("prepare"):
        table: MultimodalTable = build(cfg.data.source, "data.source")
        modalities, tasks = list(cfg.modalities) or list(table.modalities), task_specs(cfg, table)
        resolve_monitor(cfg, tasks)
        encoders = encoder_configs(cfg, table, modalities)
    with phases("train"):
        result = gbm.train(
            OmegaConf.to_container(cfg.model, resolve=True),
            table,
            modalities,
            tasks,
            encoders,
            OmegaConf.to_container(cfg.decision, resolve=True),
            cfg.seed,
            cache_dir=cfg.cache_dir,
            device=devices.device(cfg.trainer),
            precision=str(cfg.trainer.precision),
        )
    spec = data_spec(table, modalities, list(tasks))
    gbm.save(out_dir / artefacts.GBM, result, spec, tasks, table.preprocessing)
    folder, calibration, metrics = out_dir / artefacts.PREDICTIONS, result["calibration"], {}
    predictions.write_tasks(folder, tasks, (cfg.monitor, cfg.monitor_mode), table.spec)
    for split, rows in result["rows"].items():
        values = result["values"][split]
        outputs = {t: outputs_of(tasks[t], v) for t, v in values.items()}
        targets = {t: table.targets[t][rows] for t in tasks}
        frame = predictions.frame_of(tasks, rows, table.row_ids(rows), outputs, targets, calibration)
        frame.to_parquet(folder / f"{split}.parquet", index=False)
        metrics.update(predictions.metrics(tasks, values, frame, split, calibration))
    write_results(out_dir, cfg, metrics, {}, tasks, None)
    importance = gbm.importance(result, tasks)
    write_rows(out_dir / f"{artefacts.IMPORTANCE}.csv", importance)
    plot_importance(importance, out_dir / f"{artefacts.IMPORTANCE}.png")
    write_gbm_info(out_dir, cfg, table, modalities, tasks, encoders, result, dict(phases))
    write_report(out_dir)
    print_summary(metrics, out_dir, None)
    return metrics


def make_trainer(cfg: DictConfig) -> tuple[L.Trainer, list]:
    """The Lightning Trainer of ``cfg.trainer`` with the run's callbacks and loggers."""
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.callbacks or {}).items()]
    if cfg.get("balance"):  # modality balance (training/balance.py) acts on gradients, as a callback
        callbacks.append(build(cfg.balance, "balance"))
    if cfg.get("trial") is not None:  # a job of hydra/sweeper=mmtrain_optuna: report to its trial (pruning)
        callbacks.append(trial_reporter(cfg))
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.logger or {}).items()]
    trainer: L.Trainer = build(
        cfg.trainer,
        "trainer",
        callbacks=callbacks,
        logger=loggers or False,
        plugins=cluster_plugins(),  # off a terminal, LogProgress (callbacks) writes lines
        enable_progress_bar=bool(cfg.trainer.get("enable_progress_bar", True)) and on_terminal(),
    )
    if trainer.is_global_zero:
        for lg in loggers:
            if hasattr(lg, "log_run_config"):  # the tracking loggers (mmtrain.runtime.tracking)
                lg.log_run_config(cfg)
    return trainer, loggers


def trial_reporter(cfg: DictConfig):
    from hydra.core.hydra_config import HydraConfig

    from mmtrain.sweeping.pruning import ReportToTrial
    from mmtrain.sweeping.study import storage_url

    hydra = HydraConfig.get()
    storage, sweeper = storage_url(hydra.sweeper.storage, hydra.sweep.dir), hydra.sweeper
    return ReportToTrial(
        storage, sweeper.study_name, cfg.trial, cfg.monitor, sweeper.get("pruner"), cfg.paths.output_dir
    )


def finish_best(cfg: DictConfig, trainer, module, datamodule, best: str) -> None:
    """best.ckpt: the best epoch or an average of the top ones (average.method), then calibrated on
    val; written by rank 0 while the other ranks wait."""
    if trainer.is_global_zero:
        device, precision = trainer.strategy.root_device, str(cfg.trainer.precision)
        finalize(
            module,
            datamodule,
            top_checkpoints(trainer),
            Path(best),
            cfg.average.method,
            cfg.monitor,
            cfg.monitor_mode,
            device,
            precision,
        )
        calibrate(
            module, datamodule, best, OmegaConf.to_container(cfg.decision, resolve=True), device, precision
        )
    trainer.strategy.barrier()


def write_outputs(cfg, trainer, module, datamodule, eval_ckpt, metrics, confusion, loggers, phases) -> None:
    """metrics.json, config.yaml, curves, confusion matrices, the report's tables, run.json,
    report.md, the tracking loggers' copies, and the metrics table on the console."""
    out_dir = Path(cfg.paths.output_dir)
    best_epoch = checkpoints.peek(eval_ckpt)["epoch"] if eval_ckpt else None
    write_results(out_dir, cfg, metrics, confusion, module.tasks, best_epoch)
    device, precision = trainer.strategy.root_device, str(cfg.trainer.precision)
    with phases("report"):
        analyse(out_dir, module, datamodule, test_splits(cfg)[0], cfg.robustness, device, precision)
        splits, monitor = ["val", *test_splits(cfg)], (cfg.monitor, cfg.monitor_mode)
        predictions.write(out_dir, module, datamodule, splits, monitor, device, precision)
    write_run_info(
        out_dir,
        kind="train",
        module=module,
        table=datamodule.table,
        checkpoint=eval_ckpt,
        data_path=cfg.data.get("path") or cfg.data.name,
        wall=dict(phases),
        epochs={"trained": trainer.current_epoch, "best": best_epoch},
    )
    write_report(out_dir)
    for lg in loggers:
        if hasattr(lg, "log_run_outputs"):
            lg.log_run_outputs(out_dir, metrics)
    print_summary(metrics, out_dir, best_epoch)


def top_checkpoints(trainer) -> list[str]:
    """The files the checkpoint callback kept (average.top_k), best first."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return []
    scored = [(float(score), path) for path, score in callback.best_k_models.items() if Path(path).is_file()]
    return [path for _, path in sorted(scored, reverse=callback.mode == "max")]


def fit(trainer, module, datamodule, ckpt_path, out_dir: Path, loggers) -> None:
    if ckpt_path:
        log.info("Resuming from %s", ckpt_path)
        loops = checkpoints.peek(ckpt_path).get("loops") or {}
        datamodule.start_epoch = (
            loops.get("fit_loop", {}).get("epoch_progress", {}).get("current", {}).get("processed", 0)
        )
    csv_logged = trainer.is_global_zero and any(type(lg).__name__ == "CSVLogger" for lg in loggers)
    history = earlier_epochs(out_dir / artefacts.METRICS_CSV, ckpt_path) if csv_logged else None
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except RuntimeError as err:
        if ckpt_path and "loading state_dict" in str(err):
            raise ConfigError(
                f"The checkpoint {ckpt_path} was trained with another model config than this run's "
                f"({summary(err, 160)} ...). Start in a new run dir (a new hydra.run.dir), "
                f"or set auto_resume=false / ckpt_path=null to start from scratch."
            ) from err
        raise
    finally:
        restore_epochs(out_dir / artefacts.METRICS_CSV, history)


def earlier_epochs(metrics_csv: Path, ckpt_path: str | None):
    """The rows of metrics.csv up to the checkpoint's epoch, read before a resumed fit: Lightning's
    CSVLogger deletes the file when it starts, and a resumed run should keep one history."""
    if not ckpt_path or not metrics_csv.is_file():
        return None
    import pandas as pd

    epoch = checkpoints.peek(ckpt_path).get("epoch", -1)
    frame = pd.read_csv(metrics_csv)
    return frame[frame["epoch"] <= epoch] if "epoch" in frame else None


def restore_epochs(metrics_csv: Path, history) -> None:
    if history is None or history.empty:
        return
    import pandas as pd

    later = pd.read_csv(metrics_csv) if metrics_csv.is_file() else None
    pd.concat([history, later]).to_csv(metrics_csv, index=False)


def test_splits(cfg: DictConfig) -> list[str]:
    return list(cfg.data.get("test_splits") or ["test"])


def cluster_plugins() -> list:
    """Under Slurm, submitit owns requeueing (it resubmits the job, which then auto-resumes from its
    run dir's last.ckpt), so Lightning's own SIGUSR1 requeue handler is switched off."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def prepare(
    cfg: DictConfig, ckpt_path: str | None = None, phases: Phases | None = None, validated: bool = False
) -> tuple[MultimodalModule, MultimodalDataModule]:
    """Config -> the LightningModule and the datamodule, featurized and shape-checked (the config is
    validated first unless ``validated``). Starting from a checkpoint, its saved preprocessing is
    used, not one refitted on this data."""
    if not validated:
        validate(cfg)
    cfg.trainer.precision = devices.precision(cfg.trainer)  # auto -> what this device runs fastest
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    table: MultimodalTable = build(cfg.data.source, "data.source")
    modalities, tasks = list(cfg.modalities) or list(table.modalities), task_specs(cfg, table)
    resolve_monitor(cfg, tasks)
    if ckpt_path:
        use_saved_preprocessing(table, tasks, ckpt_path)
    model_cfg = {k: OmegaConf.to_container(cfg[k], resolve=True) for k in MODEL_KEYS}
    model_cfg["encoder"] = encoder_configs(cfg, table, modalities)
    module = MultimodalModule(model_cfg, modalities, tasks, data_spec(table, modalities, list(tasks)))
    for m in modalities:
        rate = getattr(module.model.encoders[m], "sample_rate", None)
        if rate and table.sample_rate and rate != table.sample_rate:
            raise ConfigError(
                f"encoder.{m}.sample_rate={rate} differs from the data's {table.sample_rate} Hz: "
                f"set encoder.{m}.sample_rate={table.sample_rate}."
            )
    datamodule = MultimodalDataModule(
        table,
        modalities,
        list(tasks),
        featurizers(
            module.model.encoders,
            cfg.cache_dir,
            devices.device(cfg.trainer),
            cfg.trainer.precision,
            rank_share(devices.world_size(cfg.trainer)),
        ),
        {m: module.model.encoders[m].empty_input() for m in modalities},
        LoaderSettings(
            cfg.data.batch_size,
            cfg.data.num_workers,
            cfg.data.sampler,
            cfg.data.balance_task,
            cfg.seed,
            bucket_modality(module, cfg.data.bucket_by_length),
        ),
        test_split=test_splits(cfg)[0],
        per_batch=decoded_per_batch(module.model.encoders, table, modalities),
    )
    with (phases if phases is not None else Phases())("featurize"):
        datamodule.setup()
    check_shapes(module.model, datamodule.batch(table.indices("train")[:4]))
    return module, datamodule


def bucket_modality(module: MultimodalModule, enabled: bool) -> str | None:
    """The modality whose length decides the train batches (data.bucket_by_length): the first one
    with a fine-tuned pretrained encoder, where padding costs most; None (random batches) otherwise."""
    if not enabled:
        return None
    tuned = [m for m, e in module.model.encoders.items() if e.pretrained and not getattr(e, "freeze", False)]
    return tuned[0] if tuned else None


def data_spec(table: MultimodalTable, modalities: list[str], tasks: list[str]) -> dict | None:
    """The table's column mapping for the modalities and tasks this run trains (None if the data has none)."""
    if not table.spec:
        return None
    return {
        **table.spec,
        "modalities": {m: table.spec["modalities"][m] for m in modalities},
        "targets": {t: table.spec["targets"][t] for t in tasks},
    }


def resolve_monitor(cfg: DictConfig, tasks: dict) -> None:
    """monitor=auto: the first task's main metric on val (its type's: macro-F1 for classification,
    r2 for regression), maximised; set in the config, so the callbacks and config.yaml show it."""
    if cfg.monitor != "auto":
        return
    task, spec = next(iter(tasks.items()))
    with open_dict(cfg):
        cfg.monitor = f"val/{task}/{TASKS.get(spec['type']).main_metric}"
        cfg.monitor_mode = "max"


def use_saved_preprocessing(table: MultimodalTable, tasks: dict, ckpt_path: str) -> None:
    saved = checkpoints.peek(ckpt_path)["hyper_parameters"]
    for m, encoder in saved["model_cfg"]["encoder"].items():
        if "preprocessing" in encoder and m in table.preprocessing:
            table.preprocessing[m] = encoder["preprocessing"]
    if set(saved["tasks"]) != set(tasks):
        raise ConfigError(
            f"ckpt_path={ckpt_path}: the checkpoint was trained on tasks {sorted(saved['tasks'])} and "
            f"modalities {saved['modalities']}, this config has tasks {sorted(tasks)}: give the data "
            f"settings of the run that wrote it (its config.yaml has them), e.g. data=manifest "
            f"data.path=... data.targets..."
        )
    for task, spec in tasks.items():
        before = saved["tasks"][task].get("classes")
        if before != spec["classes"]:
            raise ConfigError(
                f"ckpt_path={ckpt_path}: the checkpoint's task '{task}' has classes {before}, this "
                f"data's train split gives {spec['classes']}: evaluate it on data with the same "
                f"classes."
            )


def encoder_configs(cfg: DictConfig, table: MultimodalTable, modalities: list[str]) -> dict[str, dict]:
    """The encoder of each modality: ``encoder_for.<name>`` if the config has one, else its type's
    default ``encoder.<type>``, given the preprocessing fitted on the data for it (saved with the
    model). Names and types are separate namespaces: a text column called `image` gets encoder.text."""
    defaults = OmegaConf.to_container(cfg.encoder, resolve=True)
    own = OmegaConf.to_container(cfg.encoder_for, resolve=True)
    unknown = [k for k in defaults if k not in MODALITIES]
    if unknown:
        raise ConfigError(
            f"encoder.{unknown[0]}: not a modality type ({', '.join(MODALITIES.names())}). A "
            f"modality's own encoder goes in encoder_for.<name>: +encoder/<type>@encoder_for."
            f"{unknown[0]}=<option>."
        )
    strays = sorted(set(own) - set(modalities))
    if strays:
        raise ConfigError(
            f"encoder_for.{strays[0]}: no modality of that name (this run's: {modalities}); name "
            f"the modality as the data does, e.g. +encoder/<type>@encoder_for.{modalities[0]}=<option>."
        )
    configs = {}
    for m in modalities:
        kind = table.modality_types[m]
        if m not in own and kind not in defaults:
            raise ConfigError(
                f"No encoder for modality '{m}' (type {kind}): add one with "
                f"+encoder/{kind}=<option> or +encoder/{kind}@encoder_for.{m}=<option> "
                f"(type defaults configured: {sorted(defaults)})."
            )
        configs[m] = dict(own.get(m) or defaults[kind])
        fine_tune = finetune_policy(cfg.get("finetune"), kind)
        if (
            fine_tune is not None
            and "freeze" in configs[m]
            and configs[m].get("pretrained", True) is not False
        ):
            configs[m]["freeze"] = not fine_tune
        if m in table.preprocessing:
            configs[m]["preprocessing"] = table.preprocessing[m]
    return configs


def finetune_policy(policy, kind: str) -> bool | None:
    """``finetune`` (the presets set it): null leaves each encoder's freeze as configured; ``all``
    fine-tunes every pretrained encoder; a list of modality types fine-tunes those and freezes the
    other pretrained ones. -> whether this type's pretrained encoder trains, or None (as configured)."""
    if policy is None:
        return None
    if policy == "all":
        return True
    if isinstance(policy, str) or any(t not in MODALITIES for t in policy):
        raise ConfigError(
            f"finetune={policy} must be null, all, or a list of modality types from "
            f"{MODALITIES.names()} (e.g. finetune=[text])."
        )
    return kind in policy


def task_specs(cfg: DictConfig, table: MultimodalTable) -> dict[str, dict]:
    """{task: {"type", "classes", "weights", "priors"}}, with class or positive weights and class shares
    from the train split."""
    loss = LossSettings.of(OmegaConf.to_container(cfg.loss, resolve=True))
    train = table.indices("train")
    specs = {}
    for task in cfg.head:
        spec = table.tasks[task]
        kind, y = TASKS.get(spec.type), table.targets[task][train]
        y = y[kind.known(y)]
        specs[task] = {
            "type": spec.type,
            "classes": spec.classes,
            "weights": kind.train_weights(y, spec.classes, loss),
            "priors": kind.train_priors(y, spec.classes),
        }
    return specs


def write_results(
    out_dir: Path, cfg: DictConfig, metrics: dict, confusion: dict, tasks: dict, best_epoch: int | None
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / artefacts.FAILED).unlink(missing_ok=True)  # an earlier attempt's, in this same run dir
    (out_dir / artefacts.METRICS).write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    OmegaConf.save(cfg, out_dir / artefacts.CONFIG, resolve=True)
    if (out_dir / artefacts.METRICS_CSV).exists():
        plot_curves(out_dir / artefacts.METRICS_CSV, out_dir / artefacts.CURVES, list(tasks), best_epoch)
    write_confusions(out_dir, confusion, tasks)
