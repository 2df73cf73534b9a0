"""Optimizer settings (the ``optim`` config node): parameter groups, the optimizer and the
learning-rate schedule. The LightningModule's ``configure_optimizers`` calls :func:`configure`."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, fields

from mmtrain.errors import ConfigError, build, unknown_keys


def cosine(optimizer, trainer, warmup_ratio: float = 0.0):
    """Linear warm-up over ``warmup_ratio`` of the steps, then cosine decay to 0, per step."""
    import torch

    total = max(1, int(trainer.estimated_stepping_batches))
    warmup = int(warmup_ratio * total)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return {"scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, factor), "interval": "step"}


def plateau(optimizer, trainer, monitor: str, mode: str = "max", factor: float = 0.5, patience: int = 2):
    """ReduceLROnPlateau on a validation metric, per epoch."""
    import torch

    return {"scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=factor,
                                                                     patience=patience),
            "monitor": monitor, "interval": "epoch"}


SCHEDULERS = {"cosine": cosine, "plateau": plateau, "none": None}
# Keys people put at optim.<key> that belong to the optimizer.
OPTIMIZER_KEYS = {k: f"optimizer.{k}" for k in ("lr", "weight_decay", "betas", "eps")}


@dataclass(frozen=True)
class OptimSettings:
    """The ``optim`` node: its keys are this class's fields; ``scheduler.name`` picks one of
    SCHEDULERS, whose other keys are that function's arguments."""

    optimizer: dict
    scheduler: dict | None = None
    encoder_lr_mult: float = 1.0  # pretrained encoders train at lr x this

    def __post_init__(self):
        lr = self.optimizer.get("lr")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ConfigError(f"optim.optimizer.lr={lr} must be positive (e.g. optim.optimizer.lr=1e-3).")
        mult = self.encoder_lr_mult
        if not (isinstance(mult, (int, float)) and mult >= 0):
            raise ConfigError(f"optim.encoder_lr_mult={mult} must be a number >= 0 (e.g. 0.1: pretrained encoders "
                              f"learn 10x slower; freeze=true keeps them fixed).")
        name = self.scheduler_name
        if name not in SCHEDULERS:
            raise ConfigError(f"optim.scheduler.name={name} is not known: use {', '.join(SCHEDULERS)} "
                              f"(or optim=adamw_plateau).")
        if SCHEDULERS[name] is not None:
            allowed = list(inspect.signature(SCHEDULERS[name]).parameters)[2:]
            unknown_keys({k: v for k, v in self.scheduler.items() if k != "name"}, allowed, "optim.scheduler")

    @property
    def scheduler_name(self) -> str:
        return (self.scheduler or {}).get("name", "none")

    @classmethod
    def of(cls, node: dict) -> OptimSettings:
        unknown_keys(node, [f.name for f in fields(cls)], "optim", hints=OPTIMIZER_KEYS)
        return cls(**node)


def configure(settings: OptimSettings, groups: list[dict], trainer):
    """What LightningModule.configure_optimizers returns, for these parameter groups."""
    # partial: parameter groups are dicts, which instantiate would turn into configs
    optimizer = build(settings.optimizer, "optim.optimizer", _partial_=True)(groups)
    schedule = SCHEDULERS[settings.scheduler_name]
    if schedule is None:
        return optimizer
    kwargs = {k: v for k, v in settings.scheduler.items() if k != "name"}
    return {"optimizer": optimizer, "lr_scheduler": schedule(optimizer, trainer, **kwargs)}
