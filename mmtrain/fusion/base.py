"""The fusion contract (Fusion, DecisionFusion) and pieces the strategies share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from mmtrain.core.errors import ConfigError
from mmtrain.tasks import TASKS


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.LayerNorm(in_dim),
        nn.Linear(in_dim, hidden),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, out_dim),
        nn.GELU(),
        nn.Dropout(dropout),
    )


def check_modalities(in_dims: dict[str, int]) -> list[str]:
    if not in_dims:
        raise ConfigError("The run has no modality: set `modalities` to a non-empty list.")
    return list(in_dims)


@dataclass
class ModelOutput:
    """outputs: {task: [B, K]}. For decision-level fusion also members: {task: [B, G, K]} (each
    member's own prediction) and member_present: bool [B, G]. With model.aux_heads, aux: {task:
    {modality: [B, K]}} (each modality's unimodal head on its pooled vector) and present [B, M]."""

    outputs: dict[str, torch.Tensor]
    members: dict[str, torch.Tensor] = field(default_factory=dict)
    member_present: torch.Tensor | None = None
    aux: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    present: torch.Tensor | None = None


class Fusion(nn.Module):
    """The contract every fusion keeps (one class + one YAML in mmtrain/conf/fusion/ per strategy).

    Built with ``in_dims`` {modality: d_m} (the encoders' out_dim, in the run's modality order);
    declares ``out_dim`` (the width of what its heads read) and how many modalities it takes
    (``min_modalities``..``max_modalities``). ``forward(outs, present)``: outs {m: EncoderOutput
    (tokens [B, T_m, d_m], mask bool [B, T_m], pooled [B, d_m])}, present bool [B, M] -> the fused
    features [B, out_dim]; a sample's output must not depend on a modality it lacks or on padding.
    ``heads``, ``predict`` and ``loss`` turn features into task outputs: a feature-level fusion has one
    head per task and keeps these as they are; decision-level fusion (DecisionFusion) overrides them.
    ``modality_weights`` is an optional extra output (gate values, attention weights) for the run report.
    """

    min_modalities: int = 1
    max_modalities: int | None = None
    out_dim: int

    def __init__(self, in_dims: dict[str, int]):
        super().__init__()
        self.modalities = check_modalities(in_dims)
        most = self.max_modalities if self.max_modalities is not None else len(in_dims)
        if not self.min_modalities <= len(in_dims) <= most:
            raise ConfigError(
                f"fusion ({type(self).__name__}) takes {self.min_modalities} to {most} modalities; "
                f"this run has {len(in_dims)} ({self.modalities}): pick another fusion= or set "
                f"modalities=[...]."
            )

    def heads(self, make_head: Callable[[str], nn.Module], tasks: list[str]) -> nn.ModuleDict:
        """{task: its head}, each made by ``make_head(task)`` with in_dim = out_dim."""
        return nn.ModuleDict({t: make_head(t) for t in tasks})

    def predict(self, fused: torch.Tensor, heads: nn.ModuleDict, tasks: dict[str, dict]) -> ModelOutput:
        return ModelOutput({t: head(fused) for t, head in heads.items()})

    def loss(self, out: ModelOutput, targets: dict, losses: nn.ModuleDict) -> dict[str, torch.Tensor]:
        """{task: its loss} of the outputs against the targets."""
        return {t: fn(out.outputs[t], targets[t]) for t, fn in losses.items()}

    def modality_weights(self, outs: dict, present: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """{modality (or member): [B]} the weight this fusion gives each one per sample, summing to 1
        over the present ones (0 for a missing one), for the run report; None (the default) for a
        strategy without such weights."""
        return None


def pooled_inputs(outs: dict, present: torch.Tensor, names: list[str], order: list[str]):
    """Pooled vectors of ``names``, each zeroed where the sample lacks that modality.

    outs: modality -> EncoderOutput; present [B, M] in the order of ``order``.
    Returns a list of [B, d_m] tensors.
    """
    return [outs[n].pooled * present[:, order.index(n)].unsqueeze(-1).to(outs[n].pooled.dtype) for n in names]


class DecisionFusion(Fusion):
    """Decision-level fusion: ``forward`` gives member features [B, G, out_dim] and which
    members each sample has [B, G]; a head per member predicts; ``combine`` merges them, and each
    present member's own loss is added with ``member_loss_weight``.

    combine: mean | weighted (fixed ``weights``, one per member) | learned (softmax of learned
    scores) | vote (majority of the members' predicted classes/labels; mean for regression).
    Only present members count; their weights are renormalised per sample.
    """

    COMBINES = ("mean", "weighted", "learned", "vote")

    def __init__(
        self, in_dims: dict[str, int], members: list[str], combine: str, weights, member_loss_weight: float
    ):
        super().__init__(in_dims)
        if combine not in self.COMBINES:
            raise ConfigError(
                f"fusion.combine={combine} is not known: use one of {', '.join(self.COMBINES)}."
            )
        if combine == "weighted":
            if weights is None or len(weights) != len(members):
                raise ConfigError(
                    f"fusion.weights={None if weights is None else list(weights)} "
                    "needs one weight per member "
                    f"{members} for fusion.combine=weighted (e.g. fusion.weights=[0.6,0.4])."
                )
            if min(weights) < 0 or sum(weights) <= 0:
                raise ConfigError(f"fusion.weights={list(weights)} must be non-negative with a positive sum.")
        if combine == "vote" and member_loss_weight <= 0:
            raise ConfigError(
                "fusion.combine=vote is not differentiable, so the members learn from their own "
                "losses: set fusion.member_loss_weight above 0 (e.g. 1.0)."
            )
        self.members, self.combine_mode = members, combine
        self.member_loss_weight = member_loss_weight
        fixed = torch.tensor(list(weights) if combine == "weighted" else [1.0] * len(members))
        self.register_buffer("fixed_weights", fixed.float())
        self.scores = nn.Parameter(torch.zeros(len(members))) if combine == "learned" else None

    def member_weights(self, member_present: torch.Tensor) -> torch.Tensor:
        """[B, G] weights over present members, summing to 1 per sample (0 if none present)."""
        base = torch.softmax(self.scores, 0) if self.scores is not None else self.fixed_weights
        w = base.unsqueeze(0) * member_present.to(base.dtype)
        return w / w.sum(1, keepdim=True).clamp(min=1e-12)

    def modality_weights(self, outs: dict, present: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each member's weight in the combination (fixed, learned or uniform, renormalised per sample)."""
        _, member_present = self(outs, present)
        return dict(zip(self.members, self.member_weights(member_present).T))

    def combine(self, preds: torch.Tensor, member_present: torch.Tensor, task_type: str) -> torch.Tensor:
        """preds [B, G, K] (logits, or values for regression) -> [B, K]."""
        w = self.member_weights(member_present).unsqueeze(-1)
        if self.combine_mode != "vote":
            return (w * preds).sum(1)
        return TASKS.get(task_type).vote(preds, w)

    def heads(self, make_head: Callable[[str], nn.Module], tasks: list[str]) -> nn.ModuleDict:
        return nn.ModuleDict({t: nn.ModuleList(make_head(t) for _ in self.members) for t in tasks})

    def predict(self, fused, heads: nn.ModuleDict, tasks: dict[str, dict]) -> ModelOutput:
        feats, member_present = fused
        outputs, members = {}, {}
        for task, member_heads in heads.items():
            members[task] = torch.stack([h(feats[:, g]) for g, h in enumerate(member_heads)], dim=1)
            outputs[task] = self.combine(members[task], member_present, tasks[task]["type"])
        return ModelOutput(outputs, members, member_present)

    def loss(self, out: ModelOutput, targets: dict, losses: nn.ModuleDict) -> dict[str, torch.Tensor]:
        """Per task: the combined output's loss + member_loss_weight x the mean loss of each present
        member. A vote is not differentiable: there only the members learn."""
        result = {}
        for task, fn in losses.items():
            loss = fn(out.outputs[task], targets[task]) if self.combine_mode != "vote" else 0.0
            member_losses = [
                fn(out.members[task][has, g], targets[task][has])
                for g, has in enumerate(out.member_present.T)
                if has.any()
            ]
            if member_losses:
                loss = loss + self.member_loss_weight * torch.stack(member_losses).mean()
            result[task] = loss
        return result
