"""MultimodalModel: encoders -> fusion -> heads. Plain PyTorch, no Lightning."""

from __future__ import annotations

import json

import torch
from torch import nn

from mmtrain.core.errors import ConfigError, build
from mmtrain.fusion.base import Fusion, ModelOutput
from mmtrain.tasks import TASKS

__all__ = ["ModelOutput", "MultimodalModel", "build_model", "check_shapes", "num_outputs"]


class MultimodalModel(nn.Module):
    """Batch in, per-task outputs out.

    batch["inputs"][m] = (x [B, T, ...], mask [B, T]) for each modality m (in ``modalities``
    order); batch["present"] = bool [B, M]. forward returns a :class:`ModelOutput`.
    """

    def __init__(
        self,
        encoders: dict[str, nn.Module],
        fusion: Fusion,
        heads: nn.ModuleDict,
        tasks: dict[str, dict],
        loss_weights: dict[str, float],
        modality_dropout: float = 0.0,
        aux_heads: nn.ModuleDict | None = None,
        aux_weight: float = 0.0,
    ):
        super().__init__()
        self.modality_dropout = modality_dropout
        self.aux_heads, self.aux_weight = aux_heads, aux_weight  # {modality: {task: head}} on pooled vectors
        self.modalities = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.tasks = tasks
        self.heads = heads
        self.loss_weights = loss_weights  # task -> head.<task>.loss_weight

    def forward(self, batch: dict) -> ModelOutput:
        return self.fuse(self.encode(batch["inputs"]), self.drop_modalities(batch["present"]))

    def encode(self, inputs: dict) -> dict:
        """{m: (x, mask)} -> {m: EncoderOutput}. Separate from :meth:`fuse` so that masked evaluations
        (per-modality contributions) reuse one encoding."""
        return {m: self.encoders[m](*inputs[m]) for m in self.modalities}

    def fuse(self, outs: dict, present: torch.Tensor) -> ModelOutput:
        """Encoder outputs and present [B, M] -> per-task outputs (and each modality's own, with aux
        heads)."""
        out = self.fusion.predict(self.fusion(outs, present), self.heads, self.tasks)
        if self.aux_heads is not None:
            out.aux = {
                t: {m: self.aux_heads[m][t](outs[m].pooled) for m in self.modalities} for t in self.tasks
            }
            out.present = present
        return out

    def drop_modalities(self, present: torch.Tensor) -> torch.Tensor:
        """Training only: hide each present modality of a sample with probability modality_dropout,
        keeping at least one, so the fused model cannot lean on one modality alone (ModDrop)."""
        if not self.training or not self.modality_dropout or present.shape[1] < 2:
            return present
        kept = present & (torch.rand(present.shape, device=present.device) >= self.modality_dropout)
        return torch.where(kept.any(1, keepdim=True), kept, present)

    def loss(self, out: ModelOutput, targets: dict, losses: nn.ModuleDict) -> torch.Tensor:
        """Σ_task head.<task>.loss_weight x (the fusion's loss of that task + aux_weight x the mean
        over modalities of each unimodal head's loss on the rows that have the modality)."""
        total = 0.0
        for task, loss in self.fusion.loss(out, targets, losses).items():
            if out.aux:
                own = [
                    losses[task](out.aux[task][m][has], targets[task][has])
                    for m, has in zip(self.modalities, out.present.T)
                    if has.any()
                ]
                # every aux head in the graph, also one whose modality no row has (DDP uses every parameter)
                unused = sum(0.0 * out.aux[task][m].sum() for m in self.modalities)
                loss = loss + unused + (self.aux_weight * torch.stack(own).mean() if own else 0.0)
            total = total + self.loss_weights[task] * loss
        return total


def num_outputs(task: dict) -> int:
    return TASKS.get(task["type"]).num_outputs(task.get("classes"))


def build_model(cfg: dict, modalities: list[str], tasks: dict[str, dict]) -> MultimodalModel:
    """Instantiate encoders (cfg["encoder"][m]), fusion (cfg["fusion"]) and its heads per task
    (cfg["head"][task]) from their ``_target_`` configs; sizes flow from each part's ``out_dim``.
    cfg["model"]: settings of the whole model (modality_dropout, aux_heads, aux_weight)."""
    encoders, frozen = {}, {}
    for m in modalities:  # every modality has one: train.encoder_configs says which, or why not
        key = json.dumps(cfg["encoder"][m], sort_keys=True, default=str)
        encoders[m] = frozen.get(key) or build(cfg["encoder"][m], f"encoder.{m}")
        if encoders[m].pretrained and not any(p.requires_grad for p in encoders[m].parameters()):
            frozen[key] = encoders[m]  # modalities with the same frozen encoder (text columns) share one copy
    settings, fusion_cfg = dict(cfg.get("model") or {}), dict(cfg["fusion"])
    if "modality_dropout" in fusion_cfg:  # checkpoints written before it became model.modality_dropout
        settings.setdefault("modality_dropout", fusion_cfg.pop("modality_dropout"))
    settings.pop("kind", None)  # model=neural (the group option that chose this network)
    modality_dropout = settings.pop("modality_dropout", 0.0)
    aux, aux_weight = settings.pop("aux_heads", False), settings.pop("aux_weight", 0.3)
    if settings:
        raise ConfigError(
            f"model: unknown setting(s) {sorted(settings)}; it takes modality_dropout, aux_heads, aux_weight."
        )
    if not 0 <= modality_dropout < 1:
        raise ConfigError(f"model.modality_dropout={modality_dropout} must be in [0, 1).")
    if not isinstance(aux, bool) or aux_weight < 0:
        raise ConfigError(
            f"model.aux_heads={aux} must be true or false and model.aux_weight={aux_weight} >= 0."
        )
    fusion = build(fusion_cfg, "fusion", in_dims={m: e.out_dim for m, e in encoders.items()})
    if not isinstance(fusion, Fusion):
        raise ConfigError(
            f"fusion: {type(fusion).__name__} is not a mmtrain.fusion.base.Fusion; a fusion subclasses "
            f"it (see mmtrain/fusion/early.py)."
        )

    loss_weights = {}

    def make_head(task: str) -> nn.Module:
        head = build(
            cfg["head"][task], f"head.{task}", in_dim=fusion.out_dim, num_outputs=num_outputs(tasks[task])
        )
        loss_weights[task] = head.loss_weight
        return head

    heads = fusion.heads(make_head, list(tasks))
    aux_heads = (
        nn.ModuleDict(
            {
                m: nn.ModuleDict(
                    {
                        t: build(
                            cfg["head"][t], f"head.{t}", in_dim=e.out_dim, num_outputs=num_outputs(tasks[t])
                        )
                        for t in tasks
                    }
                )
                for m, e in encoders.items()
            }
        )
        if aux
        else None
    )
    return MultimodalModel(
        encoders, fusion, heads, tasks, loss_weights, modality_dropout, aux_heads, aux_weight
    )


def check_shapes(model: MultimodalModel, batch: dict) -> None:
    """Run one small batch through the model before training so that a size mismatch fails here,
    with the part named, rather than mid-epoch."""
    with torch.no_grad():
        was_training = model.training
        model.eval()
        for m in model.modalities:
            out = model.encoders[m](*batch["inputs"][m])
            if (
                out.tokens.shape[-1] != model.encoders[m].out_dim
                or out.pooled.shape[-1] != model.encoders[m].out_dim
            ):
                raise ConfigError(
                    f"encoder.{m} ({type(model.encoders[m]).__name__}) declares out_dim="
                    f"{model.encoders[m].out_dim} but produced tokens {tuple(out.tokens.shape)} and pooled "
                    f"{tuple(out.pooled.shape)}: fix the encoder's size settings."
                )
        try:
            outputs = model(batch).outputs
        except RuntimeError as err:
            raise ConfigError(
                f"fusion ({type(model.fusion).__name__}) does not fit the encoders' outputs "
                f"{ {m: e.out_dim for m, e in model.encoders.items()} }: {err}"
            ) from err
        finally:
            model.train(was_training)
        for task, out in outputs.items():
            expected = num_outputs(model.tasks[task])
            if out.shape[-1] != expected or not torch.isfinite(out).all():
                raise ConfigError(
                    f"head.{task} gave outputs of shape {tuple(out.shape)} "
                    f"(expected [B, {expected}], finite)."
                )
