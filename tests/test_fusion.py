"""The fusion contract, for every YAML of mmtrain/conf/fusion/ and the combine variants: output shapes, masks,
padding, that a missing modality contributes nothing, and that gradients reach every parameter."""

from pathlib import Path

import pytest
import torch
import yaml

import mmtrain
from mmtrain.core.errors import ConfigError, build
from mmtrain.encoders.base import EncoderOutput
from mmtrain.fusion.base import Fusion
from mmtrain.fusion.early import EarlyFusion
from mmtrain.fusion.hybrid import HybridFusion
from mmtrain.fusion.intermediate import IntermediateFusion
from mmtrain.fusion.late import LateFusion

DIMS = {"text": 12, "audio": 8, "meta": 4}
B = 5


def encoder_outputs(seed: int, present: torch.Tensor, lengths=(7, 9, 3)) -> dict:
    g = torch.Generator().manual_seed(seed)
    outs = {}
    for k, (m, d) in enumerate(DIMS.items()):
        tokens = torch.randn(B, lengths[k], d, generator=g)
        mask = torch.ones(B, lengths[k], dtype=torch.bool)
        mask[0, lengths[k] // 2 :] = False  # padding in one row
        mask[~present[:, k]] = False  # a missing modality has no real token
        outs[m] = EncoderOutput(tokens, mask, tokens.mean(1))
    return outs


def perturb_missing(outs: dict, present: torch.Tensor) -> dict:
    """New random values wherever a modality is missing; real inputs untouched."""
    changed = {}
    for k, (m, out) in enumerate(outs.items()):
        missing = ~present[:, k]
        tokens, pooled = out.tokens.clone(), out.pooled.clone()
        tokens[missing] = torch.randn_like(tokens[missing]) * 100
        pooled[missing] = torch.randn_like(pooled[missing]) * 100
        changed[m] = EncoderOutput(tokens, out.mask, pooled)
    return changed


FUSIONS = {
    "early": lambda: EarlyFusion(DIMS, dim=16),
    "late": lambda: LateFusion(DIMS, dim=16),
    "late_weighted": lambda: LateFusion(DIMS, dim=16, combine="weighted", weights=[0.5, 0.3, 0.2]),
    "late_learned": lambda: LateFusion(DIMS, dim=16, combine="learned"),
    "late_vote": lambda: LateFusion(DIMS, dim=16, combine="vote", member_loss_weight=1.0),
    "intermediate": lambda: IntermediateFusion(DIMS, dim=16, heads=2, layers=2, out_dim=16),
    "hybrid": lambda: HybridFusion(DIMS, dim=16, groups={"ta": ["text", "audio"], "meta": ["meta"]}),
}


CONF = Path(mmtrain.__file__).parent / "conf" / "fusion"
SMALL = {"dim": 16, "out_dim": 16, "heads": 2}  # sizes for a fast test, where the fusion takes them


def from_yaml(path: Path):
    node = yaml.safe_load(path.read_text())
    return lambda: build({**node, **{k: v for k, v in SMALL.items() if k in node}}, "fusion", in_dims=DIMS)


FUSIONS.update({f"mmtrain/conf/{path.stem}": from_yaml(path) for path in sorted(CONF.glob("*.yaml"))})
TASKS = {"y": {"type": "multiclass"}}


def predict(fusion, outs, present, heads=None):
    """The outputs [B, 3] a model would make, through the fusion's own heads and predict."""
    if heads is None:
        torch.manual_seed(0)
        heads = fusion.heads(lambda task: torch.nn.Linear(fusion.out_dim, 3), list(TASKS))
    return fusion.predict(fusion(outs, present), heads, TASKS)


def test_every_fusion_yaml_is_in_the_contract_tests():
    assert {p.stem for p in CONF.glob("*.yaml")} <= {n.split("/")[-1] for n in FUSIONS}
    assert all(isinstance(make(), Fusion) for make in FUSIONS.values())


@pytest.mark.parametrize("name", FUSIONS)
def test_missing_modality_changes_nothing(name):
    torch.manual_seed(0)
    fusion = FUSIONS[name]().eval()
    present = torch.ones(B, 3, dtype=torch.bool)
    present[1, 1] = present[2, 0] = present[3, 2] = present[4, 1] = False
    outs = encoder_outputs(1, present)
    heads = fusion.heads(lambda task: torch.nn.Linear(fusion.out_dim, 3), list(TASKS)).eval()
    with torch.no_grad():
        before = predict(fusion, outs, present, heads).outputs["y"]
        after = predict(fusion, perturb_missing(outs, present), present, heads).outputs["y"]
    assert torch.isfinite(before).all()
    torch.testing.assert_close(before, after)
    # and a present modality does matter
    changed = dict(outs)
    changed["audio"] = EncoderOutput(outs["audio"].tokens * -3, outs["audio"].mask, outs["audio"].pooled * -3)
    with torch.no_grad():
        assert not torch.allclose(predict(fusion, changed, present, heads).outputs["y"][0], before[0])


@pytest.mark.parametrize("name", FUSIONS)
def test_shapes_padding_and_gradients(name):
    torch.manual_seed(0)
    fusion = FUSIONS[name]()
    present = torch.ones(B, 3, dtype=torch.bool)
    present[1, 1] = False
    outs = encoder_outputs(0, present)
    heads = fusion.heads(lambda task: torch.nn.Linear(fusion.out_dim, 3), list(TASKS))
    out = predict(fusion, outs, present, heads)
    assert out.outputs["y"].shape == (B, 3)
    if out.members:
        assert out.members["y"].shape == (B, len(fusion.members), 3)
        assert out.member_present.shape == (B, len(fusion.members))
    # padded positions (mask False) never matter
    padded = {
        m: EncoderOutput(
            torch.where(o.mask.unsqueeze(-1), o.tokens, torch.full_like(o.tokens, 50.0)), o.mask, o.pooled
        )
        for m, o in outs.items()
    }
    fusion.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            predict(fusion, outs, present, heads).outputs["y"],
            predict(fusion, padded, present, heads).outputs["y"],
        )
    fusion.train()
    # gradients reach every trainable parameter (none left unregistered or rebuilt in forward)
    losses = torch.nn.ModuleDict({"y": torch.nn.CrossEntropyLoss()})
    loss = sum(
        fusion.loss(
            predict(fusion, outs, present, heads), {"y": torch.tensor([0, 1, 2, 0, 1])}, losses
        ).values()
    )
    loss.backward()
    starved = [
        n
        for n, p in [*fusion.named_parameters(), *heads.named_parameters()]
        if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)
    ]
    assert not starved, f"no gradient reaches {starved}"


@pytest.mark.parametrize("name", FUSIONS)
def test_modality_weights_sum_to_one_over_present_ones(name):
    """The optional extra output for the run report: where a fusion has weights, one [B] tensor per
    modality (or member), non-negative, 0 for a missing one, summing to 1 over the present ones."""
    torch.manual_seed(0)
    fusion = FUSIONS[name]().eval()
    present = torch.ones(B, 3, dtype=torch.bool)
    present[1, 1] = present[2, 0] = present[2, 2] = False
    with torch.no_grad():
        weights = fusion.modality_weights(encoder_outputs(0, present), present)
    if weights is None:
        return
    stacked = torch.stack(list(weights.values()), 1)
    assert stacked.shape == (B, len(getattr(fusion, "members", DIMS)))
    assert (stacked >= 0).all()
    torch.testing.assert_close(stacked.sum(1), torch.ones(B))
    if list(weights) == list(DIMS):  # weights per modality: a missing one gets none
        assert (stacked[~present] == 0).all()


def test_the_reported_weights_average_the_rows_with_every_modality_else_those_with_any():
    from mmtrain.evaluation.analysis import weight_rows

    weights = {"a": torch.tensor([0.2, 0.4, 1.0, 0.0]), "b": torch.tensor([0.8, 0.6, 0.0, 0.0])}
    present = torch.tensor([[True, True], [True, True], [True, False], [False, False]])
    assert [(r["name"], round(r["mean"], 6), r["rows"]) for r in weight_rows(weights, present)] == [
        ("a", 0.3, 2),
        ("b", 0.7, 2),
    ]
    rows = weight_rows({k: w[2:] for k, w in weights.items()}, present[2:])  # no row has both
    assert [(r["mean"], r["rows"], r["over"]) for r in rows] == [
        (1.0, 1, "rows with any modality"),
        (0.0, 1, "rows with any modality"),
    ]


def test_intermediate_with_one_modality_attends_to_itself():
    fusion = IntermediateFusion({"text": 12}, dim=16, heads=2, out_dim=8)
    present = torch.ones(B, 1, dtype=torch.bool)
    outs = {"text": encoder_outputs(0, torch.ones(B, 3, dtype=torch.bool))["text"]}
    assert fusion(outs, present).shape == (B, 8)
    assert fusion.pairs == [("text", "text")]


def test_weighted_combination_renormalises_over_present_members():
    fusion = LateFusion({"text": 4, "tab": 4}, combine="weighted", weights=[0.6, 0.4])
    preds = torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])  # [B=2, G=2, K=2]
    present = torch.tensor([[True, True], [False, True]])
    combined = fusion.combine(preds, present, "multiclass")
    torch.testing.assert_close(combined, torch.tensor([[0.6, 0.4], [0.0, 1.0]]))


def test_vote_takes_the_majority_class():
    fusion = LateFusion({"a": 2, "b": 2, "c": 2}, combine="vote", member_loss_weight=1.0)
    preds = torch.tensor([[[5.0, 0.0], [0.0, 1.0], [0.0, 2.0]]])  # votes: 0, 1, 1
    present = torch.ones(1, 3, dtype=torch.bool)
    assert fusion.combine(preds, present, "multiclass").argmax(-1).item() == 1
    present[0, 2] = False  # one vote each: the tie goes to the more confident member
    assert fusion.combine(preds, present, "multiclass").argmax(-1).item() == 0


def test_learned_weights_are_trainable_and_sum_to_one():
    fusion = LateFusion(DIMS, combine="learned")
    weights = fusion.member_weights(torch.ones(2, 3, dtype=torch.bool))
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    assert fusion.scores.requires_grad


@pytest.mark.parametrize(
    "build, text",
    [
        (lambda: LateFusion(DIMS, combine="weighted", weights=[0.6, 0.4]), "needs one weight per member"),
        (
            lambda: LateFusion(DIMS, combine="vote", member_loss_weight=0.0),
            "set fusion.member_loss_weight above 0",
        ),
        (lambda: LateFusion(DIMS, combine="max"), "fusion.combine=max is not known"),
        (
            lambda: IntermediateFusion(DIMS, dim=30, heads=4),
            "fusion.dim=30 must be divisible by fusion.heads=4",
        ),
        (lambda: HybridFusion(DIMS, groups={"x": ["text", "video"]}), "fusion.groups.x"),
        (lambda: EarlyFusion({}), "no modality"),
    ],
)
def test_bad_fusion_settings_fail_at_build_time(build, text):
    with pytest.raises(ConfigError, match=text):
        build()


def test_hybrid_default_groups():
    fusion = HybridFusion({"text": 4, "audio": 4})
    assert fusion.groups == {"text": ["text"], "audio": ["audio"], "all": ["text", "audio"]}


def test_a_checkpoint_config_with_fusion_modality_dropout_still_builds(tmp_path):
    from conftest import make_cfg

    from mmtrain.model.network import build_model
    from mmtrain.train import prepare

    module, _ = prepare(make_cfg(tmp_path, "model.modality_dropout=0.25"))
    old = {k: dict(v) if isinstance(v, dict) else v for k, v in module.hparams.model_cfg.items()}
    old["fusion"]["modality_dropout"] = old.pop("model")["modality_dropout"]  # as written before model.*
    rebuilt = build_model(old, module.hparams.modalities, module.hparams.tasks)
    assert rebuilt.modality_dropout == 0.25 == module.model.modality_dropout
    assert rebuilt.state_dict().keys() == module.model.state_dict().keys()


def xor_views(n: int, seed: int):
    """Two modalities, each a noisy code of one random bit (3 tokens of width 8); the label is the XOR of
    the bits, so neither modality alone says anything about it: only their interaction does."""
    g = torch.Generator().manual_seed(seed)
    bits = torch.randint(0, 2, (2, n), generator=g)
    directions = torch.nn.functional.normalize(
        torch.randn(2, 8, generator=torch.Generator().manual_seed(99)), dim=-1
    )
    outs = {}
    for k, m in enumerate(("a", "b")):
        tokens = (bits[k].float() * 2 - 1)[:, None, None] * directions[k] * 2 + 0.5 * torch.randn(
            n, 3, 8, generator=g
        )
        outs[m] = EncoderOutput(tokens, torch.ones(n, 3, dtype=torch.bool), tokens.mean(1))
    return outs, torch.ones(n, 2, dtype=torch.bool), bits[0] ^ bits[1]


def xor_accuracy(fusion) -> float:
    """A linear head on the fusion, trained on 512 samples, accuracy on 512 others."""
    torch.manual_seed(0)
    heads = fusion.heads(lambda task: torch.nn.Linear(fusion.out_dim, 2), ["y"])
    optimizer = torch.optim.Adam([*fusion.parameters(), *heads.parameters()], lr=3e-3)
    outs, present, y = xor_views(512, 0)
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(
            fusion.predict(fusion(outs, present), heads, TASKS).outputs["y"], y
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    outs, present, y = xor_views(512, 1)
    fusion.eval()
    with torch.no_grad():
        return (
            (fusion.predict(fusion(outs, present), heads, TASKS).outputs["y"].argmax(-1) == y)
            .float()
            .mean()
            .item()
        )


# Accuracy each feature-level fusion reaches on the XOR task (chance: 0.5). attention_pool mixes the two
# projected vectors with weights from each alone, a weaker form of interaction: ~0.75 where the others
# pass 0.9.
FEATURE_LEVEL = {
    "early": 0.85,
    "gated": 0.85,
    "tensor": 0.85,
    "low_rank": 0.85,
    "bottleneck": 0.85,
    "film": 0.85,
    "attention_pool": 0.7,
}


@pytest.mark.parametrize("name", FEATURE_LEVEL)
def test_fusion_learns_an_interaction_no_single_modality_predicts(name):
    node = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    small = {**SMALL, "layers": 1}
    fusion = build(
        {**node, **{k: v for k, v in small.items() if k in node}}, "fusion", in_dims={"a": 8, "b": 8}
    )
    assert xor_accuracy(fusion) > FEATURE_LEVEL[name]


def test_one_modality_alone_is_at_chance_on_the_interaction_task():
    class OnlyA(EarlyFusion):
        def forward(self, outs, present):
            return super().forward({"a": outs["a"]}, present[:, :1])

    assert xor_accuracy(OnlyA({"a": 8}, dim=16)) < 0.6
