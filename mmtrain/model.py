"""MultimodalModel: encoders -> fusion -> heads. Plain PyTorch, no Lightning."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mmtrain.errors import ConfigError, build
from mmtrain.tasks import TASKS


@dataclass
class ModelOutput:
    """outputs: {task: [B, K]}. For decision-level fusion also members: {task: [B, G, K]} (each
    member's own prediction) and member_present: bool [B, G]."""

    outputs: dict[str, torch.Tensor]
    members: dict[str, torch.Tensor] = field(default_factory=dict)
    member_present: torch.Tensor | None = None


class MultimodalModel(nn.Module):
    """Batch in, per-task outputs out.

    batch["inputs"][m] = (x [B, T, ...], mask [B, T]) for each modality m (in ``modalities``
    order); batch["present"] = bool [B, M]. forward returns a :class:`ModelOutput`.
    """

    def __init__(self, encoders: dict[str, nn.Module], fusion: nn.Module, heads: dict,
                 tasks: dict[str, dict], modality_dropout: float = 0.0):
        super().__init__()
        self.modality_dropout = modality_dropout
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.tasks = tasks
        self.heads = nn.ModuleDict(heads)

    def forward(self, batch: dict) -> ModelOutput:
        return self.fuse(self.encode(batch["inputs"]), self.drop_modalities(batch["present"]))

    def encode(self, inputs: dict) -> dict:
        """{m: (x, mask)} -> {m: EncoderOutput}. Separate from :meth:`fuse` so that masked evaluations
        (per-modality contributions) reuse one encoding."""
        return {m: self.encoders[m](*inputs[m]) for m in self.modalities}

    def fuse(self, outs: dict, present: torch.Tensor) -> ModelOutput:
        """Encoder outputs and present [B, M] -> per-task outputs."""
        if not self.fusion.decision_level:
            fused = self.fusion(outs, present)
            return ModelOutput({t: head(fused) for t, head in self.heads.items()})
        feats, member_present = self.fusion(outs, present)
        outputs, members = {}, {}
        for task, member_heads in self.heads.items():
            preds = torch.stack([h(feats[:, g]) for g, h in enumerate(member_heads)], dim=1)
            members[task] = preds
            outputs[task] = self.fusion.combine(preds, member_present, self.tasks[task]["type"])
        return ModelOutput(outputs, members, member_present)

    def drop_modalities(self, present: torch.Tensor) -> torch.Tensor:
        """Training only: hide each present modality of a sample with probability modality_dropout,
        keeping at least one, so the fused model cannot lean on one modality alone (ModDrop)."""
        if not self.training or not self.modality_dropout or present.shape[1] < 2:
            return present
        kept = present & (torch.rand(present.shape, device=present.device) >= self.modality_dropout)
        return torch.where(kept.any(1, keepdim=True), kept, present)

    def loss_weight(self, task: str) -> float:
        head = self.heads[task]
        return (head[0] if isinstance(head, nn.ModuleList) else head).loss_weight


def num_outputs(task: dict) -> int:
    return TASKS.get(task["type"]).num_outputs(task.get("classes"))


def build_model(cfg: dict, modalities: list[str], tasks: dict[str, dict]) -> MultimodalModel:
    """Instantiate encoders (cfg["encoder"][m]), fusion (cfg["fusion"]) and one head per task
    (cfg["head"][task]) from their ``_target_`` configs; sizes flow from each part's ``out_dim``."""
    encoders = {}
    for m in modalities:
        if m not in cfg["encoder"]:
            raise ConfigError(f"No encoder for modality '{m}': add one with encoder/{m}=<choice> "
                              f"(configured encoders: {sorted(cfg['encoder'])}).")
        encoders[m] = build(cfg["encoder"][m], f"encoder.{m}")
    fusion_cfg = dict(cfg["fusion"])
    modality_dropout = fusion_cfg.pop("modality_dropout", 0.0)
    if not 0 <= modality_dropout < 1:
        raise ConfigError(f"fusion.modality_dropout={modality_dropout} must be in [0, 1).")
    fusion = build(fusion_cfg, "fusion", in_dims={m: e.out_dim for m, e in encoders.items()})
    heads = {}
    for task, spec in tasks.items():
        def make_head():
            return build(cfg["head"][task], f"head.{task}", in_dim=fusion.out_dim,
                         num_outputs=num_outputs(spec))
        heads[task] = (nn.ModuleList(make_head() for _ in fusion.members)
                       if fusion.decision_level else make_head())
    return MultimodalModel(encoders, fusion, heads, tasks, modality_dropout)


def check_shapes(model: MultimodalModel, batch: dict) -> None:
    """Run one small batch through the model before training so that a size mismatch fails here,
    with the part named, rather than mid-epoch."""
    with torch.no_grad():
        was_training = model.training
        model.eval()
        for m in model.modalities:
            out = model.encoders[m](*batch["inputs"][m])
            if out.tokens.shape[-1] != model.encoders[m].out_dim or out.pooled.shape[-1] != model.encoders[m].out_dim:
                raise ConfigError(
                    f"encoder.{m} ({type(model.encoders[m]).__name__}) declares out_dim="
                    f"{model.encoders[m].out_dim} but produced tokens {tuple(out.tokens.shape)} and pooled "
                    f"{tuple(out.pooled.shape)}: fix the encoder's size settings.")
        try:
            outputs = model(batch).outputs
        except RuntimeError as err:
            raise ConfigError(f"fusion ({type(model.fusion).__name__}) does not fit the encoders' outputs "
                              f"{ {m: e.out_dim for m, e in model.encoders.items()} }: {err}") from err
        finally:
            model.train(was_training)
        for task, out in outputs.items():
            expected = num_outputs(model.tasks[task])
            if out.shape[-1] != expected or not torch.isfinite(out).all():
                raise ConfigError(f"head.{task} gave outputs of shape {tuple(out.shape)} "
                                  f"(expected [B, {expected}], finite).")
