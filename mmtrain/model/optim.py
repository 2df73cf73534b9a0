"""Optimizer settings (the ``optim`` config node): parameter groups, the optimizer and the
learning-rate schedule. The LightningModule's ``configure_optimizers`` calls :func:`configure`."""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, fields

from mmtrain.core.errors import ConfigError, build, unknown_keys


class WarmupCosine:
    """lr factor at a step: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``.
    An object (not a closure) so LambdaLR checkpoints ``total``, which a time budget may shorten."""

    def __init__(self, warmup: int, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def cosine(optimizer, trainer, warmup_ratio: float = 0.0):
    """Linear warm-up over ``warmup_ratio`` of the steps, then cosine decay to 0, per step."""
    import torch

    total = max(1, int(trainer.estimated_stepping_batches))
    return {
        "scheduler": torch.optim.lr_scheduler.LambdaLR(
            optimizer, WarmupCosine(int(warmup_ratio * total), total)
        ),
        "interval": "step",
    }


def plateau(optimizer, trainer, monitor: str, mode: str = "max", factor: float = 0.5, patience: int = 2):
    """ReduceLROnPlateau on a validation metric, per epoch."""
    import torch

    return {
        "scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=mode, factor=factor, patience=patience
        ),
        "monitor": monitor,
        "interval": "epoch",
    }


SCHEDULERS = {"cosine": cosine, "plateau": plateau, "none": None}
# Keys people put at optim.<key> that belong to the optimizer (or were renamed).
OPTIMIZER_KEYS = {k: f"optimizer.{k}" for k in ("lr", "weight_decay", "betas", "eps")} | {
    "encoder_lr_mult": "encoder_lr"
}


@dataclass(frozen=True)
class OptimSettings:
    """The ``optim`` node: its keys are this class's fields; ``scheduler.name`` picks one of
    SCHEDULERS, whose other keys are that function's arguments."""

    optimizer: dict
    scheduler: dict | None = None
    encoder_lr: float | None = None  # pretrained encoders' top layer (null: optimizer.lr)
    layer_decay: float = 1.0  # each layer below the top of a pretrained encoder: lr x this once more
    no_decay_1d: bool = True  # no weight decay on biases and norm weights (any 1-D parameter)

    def __post_init__(self):
        lr = self.optimizer.get("lr")
        if not (isinstance(lr, (int, float)) and lr > 0):
            raise ConfigError(f"optim.optimizer.lr={lr} must be positive (e.g. optim.optimizer.lr=1e-3).")
        if self.encoder_lr is not None and not (
            isinstance(self.encoder_lr, (int, float)) and self.encoder_lr > 0
        ):
            raise ConfigError(
                f"optim.encoder_lr={self.encoder_lr} must be positive (e.g. 1e-4 for a BERT-style "
                f"encoder) or null (the head's lr); encoder.<type>.freeze=true keeps an encoder fixed."
            )
        if not (isinstance(self.layer_decay, (int, float)) and 0 < self.layer_decay <= 1):
            raise ConfigError(
                f"optim.layer_decay={self.layer_decay} must be in (0, 1] (e.g. 0.9; 1 = the same lr "
                f"for every layer)."
            )
        name = self.scheduler_name
        if name not in SCHEDULERS:
            raise ConfigError(
                f"optim.scheduler.name={name} is not known: use {', '.join(SCHEDULERS)} "
                f"(or optim=adamw_plateau)."
            )
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


def param_groups(settings: OptimSettings, module, encoders: dict) -> list[dict]:
    """Parameter groups of ``module``'s trainable parameters: the layers of each pretrained encoder
    (``encoders``: name -> Encoder with pretrained=True) at encoder_lr x layer_decay ** (layers
    above it; the top layer at encoder_lr), everything else at the optimizer's lr; with
    ``no_decay_1d`` no weight decay on 1-D parameters (biases, norm weights), as BERT and timm do."""
    lr = settings.optimizer["lr"]
    decay = settings.optimizer.get("weight_decay", 0.0)
    encoder_lr = settings.encoder_lr if settings.encoder_lr is not None else lr
    chosen: dict[int, float] = {}
    for encoder in encoders.values():
        layer_of, layers = encoder.layer_ids()
        for pname, p in encoder.named_parameters():
            if p.requires_grad:
                chosen[id(p)] = encoder_lr * settings.layer_decay ** (
                    layers - 1 - layer_of.get(pname, layers - 1)
                )
    groups: dict[tuple, list] = {}
    for p in module.parameters():
        if p.requires_grad:
            wd = 0.0 if settings.no_decay_1d and p.ndim <= 1 else decay
            groups.setdefault((chosen.get(id(p), lr), wd), []).append(p)
    return [{"params": params, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), params in groups.items()]


def configure(settings: OptimSettings, groups: list[dict], trainer):
    """What LightningModule.configure_optimizers returns, for these parameter groups."""
    # partial: parameter groups are dicts, which instantiate would turn into configs
    optimizer = build(settings.optimizer, "optim.optimizer", _partial_=True)(groups)
    schedule = SCHEDULERS[settings.scheduler_name]
    if schedule is None:
        return optimizer
    kwargs = {k: v for k, v in settings.scheduler.items() if k != "name"}
    return {"optimizer": optimizer, "lr_scheduler": schedule(optimizer, trainer, **kwargs)}
