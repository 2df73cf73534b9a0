"""Modality balance during training: On-the-fly Gradient Modulation with Generalization Enhancement
(OGM-GE; Peng et al., CVPR 2022, "Balanced Multimodal Learning via On-the-fly Gradient Modulation").

Each step, each modality's unimodal confidence s_m is the summed softmax probability its own head
(model.aux_heads) gives the true class over the batch's rows that have it. A modality that leads
the others, ρ_m = s_m / mean_{n≠m} s_n > 1, has its encoder's gradients scaled by
k_m = 1 - tanh(α · ρ_m) (the others keep k = 1), so the weaker modalities catch up; with ``noise``,
Gaussian noise of each gradient's own standard deviation is added to every encoder's gradient (the
generalization enhancement, as in the authors' code). For two modalities this is the paper's rule;
for more, each
modality is compared with the mean of the others. ``start``/``end``: the epochs it acts in.
"""

from __future__ import annotations

import torch
from lightning.pytorch.callbacks import Callback

from mmtrain.core.errors import ConfigError


def confidences(aux: dict[str, torch.Tensor], present: torch.Tensor, target: torch.Tensor):
    """([M] summed softmax probability of the true class over the rows that have each modality,
    [M] how many rows that is); aux: {modality: logits [B, K]} (in present's column order),
    target: class indices [B] (-1: no target in that row, left out). Sums, so that ranks can add theirs
    before dividing."""
    present = present & (target >= 0).unsqueeze(1)
    sums = []
    for k, logits in enumerate(aux.values()):
        p = torch.softmax(logits.detach().float(), -1).gather(1, target.clamp(min=0).view(-1, 1)).squeeze(1)
        sums.append((p * present[:, k]).sum())
    return torch.stack(sums), present.sum(0).float()


def coefficients(sums: torch.Tensor, counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """[M] gradient scales: 1 - tanh(α ρ_m) where ρ_m = s_m / mean of the others' s is above 1, else 1;
    s_m the mean confidence over the rows with modality m (so a modality present in more rows does not
    lead for that alone). All 1 when some modality has no row in the batch: nothing to compare."""
    if (counts == 0).any():
        return torch.ones_like(sums)
    scores = sums / counts
    others = (scores.sum() - scores) / (len(scores) - 1)
    ratio = scores / others.clamp(min=1e-12)
    return torch.where(ratio > 1, 1 - torch.tanh(alpha * ratio), torch.ones_like(ratio))


class OGMGE(Callback):
    """``balance=ogm_ge``: modulates each encoder's gradients before the optimizer step."""

    def __init__(self, alpha: float = 0.1, noise: bool = True, start: int = 0, end: int | None = None):
        if alpha <= 0:
            raise ConfigError(f"balance.alpha={alpha} must be above 0 (the paper uses 0.1 to 0.8).")
        self.alpha, self.noise, self.start, self.end = alpha, noise, start, end
        self.last: torch.Tensor | None = None  # the last step's coefficients, one per modality

    def setup(self, trainer, pl_module, stage: str) -> None:
        model = pl_module.model
        if model.aux_heads is None or len(model.modalities) < 2:  # (checks.validate asks for aux_heads first)
            raise ConfigError(
                "balance=ogm_ge compares the modalities' unimodal confidences: it needs two or more "
                "modalities and model.aux_heads=true."
            )
        task = next(iter(model.tasks))
        if model.tasks[task]["type"] not in ("multiclass", "binary"):
            raise ConfigError(
                f"balance=ogm_ge needs a classification first task; '{task}' is {model.tasks[task]['type']}."
            )

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        step = pl_module.last_train_step
        epoch = trainer.current_epoch
        if step is None or epoch < self.start or (self.end is not None and epoch >= self.end):
            return
        out, targets = step
        model = pl_module.model
        task = next(iter(model.tasks))
        # summed over DDP ranks (the gradients are already averaged), so every rank scales alike
        sums, counts = (
            trainer.strategy.reduce(t, reduce_op="sum")
            for t in confidences(out.aux[task], out.present, targets[task])
        )
        self.last = coefficients(sums, counts, self.alpha)
        self.modulate({m: model.encoders[m] for m in model.modalities}, self.last, seed=trainer.global_step)
        for m, k in zip(model.modalities, self.last):  # the epoch's mean scale per modality, in metrics.csv
            pl_module.log(f"balance/{m}/k", k, on_step=False, on_epoch=True)

    def modulate(self, encoders: dict, coefficients: torch.Tensor, seed: int = 0) -> None:
        """grad <- k_m grad (+ N(0, std(grad)²) with noise, as the authors' code does for every encoder).
        The noise comes from a generator seeded by ``seed`` (the step), the same on every DDP rank."""
        generators: dict = {}
        for encoder, k in zip(encoders.values(), coefficients.tolist()):
            for p in encoder.parameters():
                if p.grad is None:
                    continue
                std = p.grad.std() if p.grad.numel() > 1 else torch.zeros((), device=p.grad.device)
                p.grad.mul_(k)
                if self.noise:
                    g = generators.setdefault(p.grad.device, torch.Generator(p.grad.device).manual_seed(seed))
                    noise = torch.randn(p.grad.shape, generator=g, device=p.grad.device, dtype=p.grad.dtype)
                    p.grad.add_(noise * (std + 1e-8))
