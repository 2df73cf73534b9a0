"""Config checks that need no data and no heavy import, so a bad value fails within a second."""

from __future__ import annotations

import difflib

from omegaconf import DictConfig, OmegaConf, open_dict

from mmtrain.errors import ConfigError

CLASS_WEIGHTS = ("none", "balanced", "effective_number")
SCHEDULERS = ("cosine", "plateau", "none")
# Keys a config may hold at these places: anything else is a typo (e.g. +optim.lr=0.1) that would
# otherwise be ignored without a word.
KNOWN_KEYS = {
    "": {"data", "encoder", "fusion", "head", "loss", "optim", "trainer", "callbacks", "logger", "paths",
         "modalities", "seed", "cache_dir", "train", "ckpt_path", "auto_resume", "monitor", "monitor_mode",
         "optimized_metric", "optimized_mode"},
    "optim": {"optimizer", "scheduler", "encoder_lr_mult"},
    "loss": {"class_weights", "beta", "pos_weight", "regression", "huber_delta", "label_smoothing"},
}


def missing_values(node, prefix: str = "") -> list[str]:
    """Keys still ``???`` (a value the user must give), found without resolving interpolations."""
    found = []
    for key in node.keys():
        child = node._get_node(key)
        if OmegaConf.is_missing(node, key):
            found.append(f"{prefix}{key}")
        elif isinstance(child, DictConfig) and not OmegaConf.is_interpolation(node, key):
            found += missing_values(child, f"{prefix}{key}.")
    return found


def expand_heads(cfg: DictConfig) -> None:
    """head._default_ (head=per_target) becomes one head per task of the data, each the template
    merged with what head.<task> sets; other head keys stay (and are checked against the tasks)."""
    if not cfg.head or "_default_" not in cfg.head:
        return
    template = cfg.head._default_
    heads = {t: OmegaConf.merge(template, cfg.head.get(t) or {}) for t in cfg.data.tasks}
    heads.update({k: v for k, v in cfg.head.items() if k != "_default_" and k not in heads})
    with open_dict(cfg):
        cfg.head = heads


def validate(cfg: DictConfig) -> None:
    """Checks that need no data, so a bad value fails in a second, before anything heavy runs.
    Expands head=per_target first (see expand_heads)."""
    missing = missing_values(cfg)
    if missing:
        example = "data.path=/data/manifest.csv" if missing[0] == "data.path" else f"{missing[0]}=<value>"
        raise ConfigError(f"{', '.join(missing)} not set: give {'it' if len(missing) == 1 else 'them'} on the "
                          f"command line (e.g. {example}).")
    if "targets" in cfg.data and not cfg.data.targets:
        raise ConfigError("data.targets is empty: name what to predict, e.g. data.targets.label.column=label "
                          "(type multiclass|binary|multilabel|regression is inferred, or set with "
                          "data.targets.label.type=...).")
    expand_heads(cfg)
    for where, known in KNOWN_KEYS.items():
        node = cfg.get(where) if where else cfg
        for key in node or {}:
            if key not in known:
                full = f"{where}.{key}" if where else key
                close = difflib.get_close_matches(key, known, n=1)
                if where == "optim" and key in ("lr", "weight_decay", "betas", "eps"):
                    close = [f"optimizer.{key}"]
                hint = f"did you mean {where + '.' if where else ''}{close[0]}?" if close else \
                    f"known keys: {', '.join(sorted(known))}."
                raise ConfigError(f"{full} is not a setting of mmtrain: {hint} (mmtrain --cfg job shows them all).")
    for key in ("monitor_mode", "optimized_mode"):
        if cfg[key] not in ("max", "min"):
            raise ConfigError(f"{key}={cfg[key]} must be max or min.")
    if not cfg.train and cfg.ckpt_path in (None, ""):
        raise ConfigError("train=false evaluates a checkpoint, so it needs ckpt_path=<run dir>/checkpoints/best.ckpt.")
    if cfg.train and not (cfg.trainer.get("max_epochs") or 0) >= 1 and (cfg.trainer.get("max_steps") or -1) < 1:
        raise ConfigError(f"trainer.max_epochs={cfg.trainer.get('max_epochs')} trains nothing: set it to 1 or more "
                          f"(or use train=false ckpt_path=... to only evaluate).")
    declared = list(cfg.data.modalities)
    if isinstance(cfg.modalities, str):
        raise ConfigError(f"modalities={cfg.modalities} must be a list: modalities=[{cfg.modalities}].")
    if declared and (cfg.modalities is None or len(cfg.modalities) == 0):
        raise ConfigError(f"modalities is empty: list at least one of {declared} (e.g. modalities=[text]).")
    unknown = [m for m in cfg.modalities or [] if m not in declared] if declared else []
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
    smoothing = cfg.loss.get("label_smoothing", 0.0)
    if not 0 <= smoothing < 1:
        raise ConfigError(f"loss.label_smoothing={smoothing} must be in [0, 1) (e.g. 0.1).")
    scheduler = (cfg.optim.get("scheduler") or {}).get("name", "none")
    if scheduler not in SCHEDULERS:
        raise ConfigError(f"optim.scheduler.name={scheduler} is not known: use {', '.join(SCHEDULERS)} "
                          f"(or optim=adamw_plateau).")
    lr = cfg.optim.optimizer.lr
    if not lr > 0:
        raise ConfigError(f"optim.optimizer.lr={lr} must be positive (e.g. optim.optimizer.lr=1e-3).")
    mult = cfg.optim.get("encoder_lr_mult", 1.0)
    if not (isinstance(mult, (int, float)) and mult >= 0):
        raise ConfigError(f"optim.encoder_lr_mult={mult} must be a number >= 0 (e.g. 0.1: pretrained encoders learn 10x slower; freeze=true keeps them fixed).")
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision.startswith("16") and not _cuda_available():
        raise ConfigError(f"trainer.precision={precision} needs a CUDA GPU and none is visible: use "
                          f"trainer.precision=bf16-mixed (runs on CPU) or 32-true.")
    if cfg.data.sampler == "balanced" and cfg.data.balance_task not in cfg.head:
        raise ConfigError(f"data.sampler=balanced balances data.balance_task={cfg.data.balance_task}, "
                          f"which is not a task of this run {list(cfg.head)}.")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def validate_launch(cfg: DictConfig, multirun: bool, launcher: str) -> None:
    """Refuse multi-process DDP inside a local multirun: each DDP rank re-runs the whole sweep (and
    with Optuna trains different trials in one job). Under Slurm the ranks come from srun instead."""
    trainer = cfg.trainer
    strategy = str(trainer.get("strategy", "auto"))
    processes = _count(trainer.get("devices", 1)) * int(trainer.get("num_nodes", 1) or 1)
    if multirun and strategy.startswith("ddp") and strategy != "ddp_spawn" and processes > 1 \
            and "SlurmLauncher" not in launcher:
        raise ConfigError(
            f"trainer.strategy={strategy} with {processes} processes inside a local multirun (-m) would make every "
            f"rank re-run the sweep. Use hydra/launcher=slurm (each job gets tasks_per_node = trainer.devices "
            f"from srun), or trainer.strategy=ddp_spawn, or trainer.devices=1 per job.")


def _count(devices) -> int:
    if isinstance(devices, int):
        return devices
    if isinstance(devices, str):
        return 1 if devices in ("auto", "-1") else len([d for d in devices.split(",") if d.strip()]) or 1
    return len(devices)
