"""Config checks that need no data and no heavy import, so a bad value fails within a second."""

from __future__ import annotations

import functools
from importlib import resources

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from mmtrain.core.errors import ConfigError, closest, unknown_keys


@functools.cache
def primary_keys(config_name: str) -> frozenset[str]:
    """The top-level keys a primary config (mmtrain/conf/<config_name>.yaml) defines: its own keys and the
    config groups of its defaults list. Any other top-level key was added by a typo (+optim=...)."""
    primary = yaml.safe_load(resources.files("mmtrain.conf").joinpath(f"{config_name}.yaml").read_text())
    groups = {
        str(next(iter(d)) if isinstance(d, dict) else d).split("/")[0].split("@")[0].removeprefix("override ")
        for d in primary.get("defaults", [])
    }
    return frozenset(set(primary) - {"defaults", "hydra"} | groups - {"_self_"})


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


def validate_command(cfg: DictConfig, config_name: str) -> None:
    """The checks every command's config gets: no ``???`` left, no top-level key that is not its own."""
    require_values(cfg)
    unknown_keys(cfg, primary_keys(config_name), "")


def require_values(cfg: DictConfig) -> None:
    missing = missing_values(cfg)
    if missing:
        examples = {"data.path": "data.path=/data/manifest.csv", "run": "run=outputs/<date>/<time>"}
        example = examples.get(missing[0], f"{missing[0]}=<value>")
        raise ConfigError(
            f"{', '.join(missing)} not set: give {'it' if len(missing) == 1 else 'them'} on the "
            f"command line (e.g. {example})."
        )


# Settings compared or counted with before anything uses them: a value of the wrong type (max_epochs=two)
# is a ConfigError naming the key, not a TypeError from deep inside. "number": int or float.
TYPED = {
    "trainer.max_epochs": "whole number",
    "trainer.max_steps": "whole number",
    "trainer.min_epochs": "whole number",
    "trainer.accumulate_grad_batches": "whole number",
    "trainer.log_every_n_steps": "whole number",
    "trainer.num_nodes": "whole number",
    "trainer.gradient_clip_val": "number",
    "trainer.val_check_interval": "number",
    "data.batch_size": "whole number",
    "data.max_rows": "whole number",
    "data.split_seed": "whole number",
    "seed": "whole number",
    "optim.optimizer.lr": "number",
    "optim.optimizer.weight_decay": "number",
    "optim.encoder_lr": "number",
    "optim.layer_decay": "number",
    "callbacks.early_stopping.patience": "whole number",
    "average.top_k": "whole number",
    "cv.folds": "whole number",
    "cv.fold": "whole number",
}
EXAMPLES = {"whole number": "10", "number": "0.001"}


def require_types(cfg: DictConfig) -> None:
    for key, kind in TYPED.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is None:
            continue
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole or kind == "number" and isinstance(value, float)):
            raise ConfigError(f"{key}={value} must be a {kind} (e.g. {key}={EXAMPLES[kind]}).")


def validate(cfg: DictConfig) -> None:
    """Checks that need no data, so a bad value (or a data.path that names no file) fails in a
    second, before Lightning is imported. Expands head=per_target first (see expand_heads)."""
    require_values(cfg)
    require_types(cfg)
    check_data(cfg)
    expand_heads(cfg)
    unknown_keys(cfg, primary_keys("train"), "")
    check_run(cfg)
    check_modalities(cfg)
    check_heads(cfg)
    check_settings(cfg)
    check_model(cfg)


MODEL_KINDS = ("neural", "gbm")


def check_model(cfg: DictConfig) -> None:
    """model=neural|gbm, and the trees' settings in range."""
    kind = cfg.model.get("kind", "neural")
    if kind not in MODEL_KINDS:
        raise ConfigError(f"model.kind={kind} is not known: choose model=neural or model=gbm.")
    if kind != "gbm":
        return
    positive = {"learning_rate": float, "max_rounds": int, "early_stopping": int, "min_data_in_leaf": int}
    for key, kind_of in positive.items():
        value = cfg.model[key]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"model.{key}={value} must be a positive {kind_of.__name__}.")
    if not isinstance(cfg.model.num_leaves, int) or cfg.model.num_leaves < 2:
        raise ConfigError(f"model.num_leaves={cfg.model.num_leaves} must be a whole number of 2 or more.")
    if not 0 < cfg.model.feature_fraction <= 1:
        raise ConfigError(f"model.feature_fraction={cfg.model.feature_fraction} must be in (0, 1].")
    dims = cfg.model.embedding_dims
    if dims is not None and (not isinstance(dims, int) or dims < 1):
        raise ConfigError(
            f"model.embedding_dims={dims} must be a whole number of 1 or more, or null (no PCA)."
        )


def check_data(cfg: DictConfig) -> None:
    """Something to predict, and the data file exists (light: no pandas or torch yet)."""
    if "targets" in cfg.data and not cfg.data.targets:
        raise ConfigError(
            "data.targets is empty: name what to predict, e.g. data.targets.label.column=label "
            "(type multiclass|binary|multilabel|regression is inferred, or set with "
            "data.targets.label.type=...)."
        )
    if cfg.data.get("path"):
        from mmtrain.data.files import locate

        locate(cfg.data.path)


def check_run(cfg: DictConfig) -> None:
    """Cross-validation, modality balance, the ranking modes and what to train."""
    if cfg.get("cv") and cfg.cv.get("fold") is not None and not cfg.cv.folds:
        raise ConfigError(
            f"cv.fold={cfg.cv.fold} picks one of cv.folds folds: set cv.folds as well (e.g. cv.folds=5)."
        )
    if cfg.get("cv") and cfg.cv.folds and "folds" not in cfg.data.source:
        raise ConfigError(
            f"cv.folds={cfg.cv.folds} needs data that can be re-split: data=manifest (or a config built on "
            f"it, e.g. data=avdigits); data '{cfg.data.name}' has fixed splits."
        )
    if cfg.get("balance") and not cfg.model.get("aux_heads"):
        raise ConfigError(
            "balance=ogm_ge compares the modalities' unimodal confidences, which come from their own "
            "heads: set model.aux_heads=true as well."
        )
    for key in ("monitor_mode", "optimized_mode"):
        if cfg[key] not in ("max", "min"):
            raise ConfigError(f"{key}={cfg[key]} must be max or min.")
    if not cfg.train and cfg.ckpt_path in (None, ""):
        raise ConfigError(
            "train=false evaluates a checkpoint, so it needs ckpt_path=<run dir>/checkpoints/best.ckpt."
        )
    if (
        cfg.train
        and not (cfg.trainer.get("max_epochs") or 0) >= 1
        and (cfg.trainer.get("max_steps") or -1) < 1
    ):
        raise ConfigError(
            f"trainer.max_epochs={cfg.trainer.get('max_epochs')} trains nothing: set it to 1 or more "
            f"(or use train=false ckpt_path=... to only evaluate)."
        )


def check_modalities(cfg: DictConfig) -> None:
    """The top-level ``modalities``: a non-empty list of the data's."""
    declared = list(cfg.data.modalities)
    if isinstance(cfg.modalities, str):
        raise ConfigError(f"modalities={cfg.modalities} must be a list: modalities=[{cfg.modalities}].")
    if declared and (cfg.modalities is None or len(cfg.modalities) == 0):
        raise ConfigError(f"modalities is empty: list at least one of {declared} (e.g. modalities=[text]).")
    unknown = [m for m in cfg.modalities or [] if m not in declared] if declared else []
    if unknown:
        raise ConfigError(
            f"modalities={list(cfg.modalities)}: {unknown} not in data '{cfg.data.name}', "
            f"which has {declared}."
        )


def check_heads(cfg: DictConfig) -> None:
    """A head per task of the data, a monitor among their metrics, a sampler over one of them."""
    if not cfg.head:
        raise ConfigError("head is empty: choose at least one task head (e.g. head=sentiment).")
    missing = [t for t in cfg.head if t not in cfg.data.tasks]
    if missing:
        raise ConfigError(
            f"head.{missing[0]}: the data '{cfg.data.name}' has no task '{missing[0]}' "
            f"(its tasks: {list(cfg.data.tasks)}); remove it or pick head=<one of those>."
        )
    monitor_task = str(cfg.monitor).split("/")[1] if str(cfg.monitor).count("/") >= 2 else None
    if monitor_task not in cfg.head and cfg.monitor not in ("val/loss", "auto"):
        raise ConfigError(
            f"monitor={cfg.monitor} is not a metric of this run's tasks {list(cfg.head)}: "
            f"use val/<task>/<metric> (e.g. monitor=val/{next(iter(cfg.head))}/...), val/loss, or auto "
            f"(the first task's main metric: macro-F1, or r2)."
        )
    if cfg.data.sampler == "balanced" and cfg.data.balance_task not in cfg.head:
        raise ConfigError(
            f"data.sampler=balanced balances data.balance_task={cfg.data.balance_task}, "
            f"which is not a task of this run {list(cfg.head)}."
        )


def check_settings(cfg: DictConfig) -> None:
    """The loss, averaging and optimiser settings (each owned by its module) and the precision."""
    from mmtrain.model.optim import OptimSettings
    from mmtrain.tasks.losses import LossSettings

    LossSettings.of(OmegaConf.to_container(cfg.loss, resolve=True))
    from mmtrain.training.averaging import check as check_average

    check_average(cfg.average.top_k, cfg.average.method)
    OptimSettings.of(OmegaConf.to_container(cfg.optim, resolve=True))
    precision = str(cfg.trainer.get("precision", "32-true"))
    if precision.startswith("16") and not _cuda_available():
        raise ConfigError(
            f"trainer.precision={precision} needs a CUDA GPU and none is visible: use "
            f"trainer.precision=bf16-mixed (runs on CPU) or 32-true."
        )


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def validate_launch(cfg: DictConfig, multirun: bool, launcher: str) -> None:
    """Refuse multi-process DDP inside a local multirun: each DDP rank re-runs the whole sweep (and
    with Optuna trains different trials in one job). Under Slurm the ranks come from srun instead."""
    strategy = str(cfg.trainer.get("strategy", "auto"))
    if not (
        multirun
        and strategy.startswith("ddp")
        and strategy != "ddp_spawn"
        and "SlurmLauncher" not in launcher
    ):
        return
    from mmtrain.runtime.devices import world_size

    processes = world_size(cfg.trainer)
    if processes > 1:
        raise ConfigError(
            f"trainer.strategy={strategy} with {processes} processes "
            "inside a local multirun (-m) would make every "
            "rank re-run the sweep. Use hydra/launcher=slurm "
            "(each job gets tasks_per_node = trainer.devices "
            f"from srun), or trainer.strategy=ddp_spawn, or trainer.devices=1 per job."
        )


def check_overrides(config_name: str, args: list[str], open_maps: tuple[str, ...]) -> None:
    """Before Hydra runs a command: a ConfigError with a did-you-mean for an override that names a
    key the config does not have (``trainer.max_epoch=2``, where Hydra would advise ``+``), and for a
    ``+key`` added to a settings group that takes no new keys (``+data.batchsize=32``, which would
    otherwise be ignored). Keys of a ``_target_`` node (any argument of its class) and of the maps a
    user fills (``open_maps``) may be added. Overrides Hydra cannot compose for another reason are
    left to Hydra's own message."""
    from hydra import compose, initialize_config_module
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except HydraException:
        return
    plain = [o for o in parsed if not o.is_sweep_override() and not o.key_or_group.startswith("hydra")]
    texts = [o.input_line for o in plain]
    added = [
        o.key_or_group
        for o in plain
        if o.is_add()
        and "/" not in o.key_or_group
        and "@" not in o.key_or_group
        and not o.key_or_group.startswith(open_maps)
    ]
    unknown = []  # keys Hydra cannot override (not in the config), found one compose at a time
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        while True:  # the config without them (and without the added keys), to look for what was meant
            try:
                base = compose(
                    config_name,
                    overrides=[
                        t
                        for o, t in zip(plain, texts)
                        if o.key_or_group not in unknown and o.key_or_group not in added
                    ],
                )
                break
            except HydraException as err:
                key = _not_in_config(str(err))
                if key is None or key in unknown:
                    return
                unknown.append(key)
    for key in unknown + added:
        parent_key, _, name = key.rpartition(".")
        parent = OmegaConf.select(base, parent_key) if parent_key else base
        targets = isinstance(parent, DictConfig) and "_target_" in parent
        if key in added and (targets or not isinstance(parent, DictConfig)):
            continue  # an argument of the target class: checked against its signature before it is built
        siblings = [str(k) for k in parent] if isinstance(parent, DictConfig) else []
        close = closest(name, siblings)
        hint = (
            f" For an argument of {parent['_target_']} that the config does not list, add it with "
            f"+{key}=<value>."
            if targets
            else ""
        )
        where = f"{parent_key}." if parent_key else ""
        if close:
            raise ConfigError(
                f"{key} is not a setting of mmtrain: did you mean {where}{close}?{hint} "
                f"(mmtrain --cfg job shows them all)."
            )
        raise ConfigError(
            f"{key} is not a setting of mmtrain ({where or 'the config'} has: {', '.join(siblings)}).{hint}"
        )


def _not_in_config(message: str) -> str | None:
    """The key of Hydra's "Could not override 'key'" (a key the config does not have), else None."""
    import re

    found = re.search(r"Could not override '([^']+)'", message)
    return found.group(1) if found and "+" in message else None
