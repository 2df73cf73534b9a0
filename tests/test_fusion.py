"""Every fusion strategy: output shapes, masks, and that a missing modality contributes nothing."""

import pytest
import torch

from mmtrain.encoders.base import EncoderOutput
from mmtrain.errors import ConfigError
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
        mask[0, lengths[k] // 2:] = False  # padding in one row
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


def predict(fusion, outs, present):
    """The fused outputs a model would make: decision-level fusion goes through a head per member."""
    if not fusion.decision_level:
        return fusion(outs, present)
    feats, member_present = fusion(outs, present)
    torch.manual_seed(0)
    heads = [torch.nn.Linear(feats.shape[-1], 3) for _ in range(feats.shape[1])]
    preds = torch.stack([h(feats[:, g]) for g, h in enumerate(heads)], 1)
    return fusion.combine(preds, member_present, "multiclass")


@pytest.mark.parametrize("name", FUSIONS)
def test_missing_modality_changes_nothing(name):
    torch.manual_seed(0)
    fusion = FUSIONS[name]().eval()
    present = torch.ones(B, 3, dtype=torch.bool)
    present[1, 1] = present[2, 0] = present[3, 2] = present[4, 1] = False
    outs = encoder_outputs(1, present)
    with torch.no_grad():
        before = predict(fusion, outs, present)
        after = predict(fusion, perturb_missing(outs, present), present)
    assert torch.isfinite(before).all()
    torch.testing.assert_close(before, after)
    # and a present modality does matter
    changed = dict(outs)
    changed["audio"] = EncoderOutput(outs["audio"].tokens * -3, outs["audio"].mask, outs["audio"].pooled * -3)
    with torch.no_grad():
        assert not torch.allclose(predict(fusion, changed, present)[0], before[0])


@pytest.mark.parametrize("name", FUSIONS)
def test_shapes(name):
    fusion = FUSIONS[name]()
    present = torch.ones(B, 3, dtype=torch.bool)
    out = fusion(encoder_outputs(0, present), present)
    if fusion.decision_level:
        feats, member_present = out
        assert feats.shape == (B, len(fusion.members), fusion.out_dim)
        assert member_present.shape == (B, len(fusion.members))
    else:
        assert out.shape == (B, fusion.out_dim)


def test_intermediate_with_one_modality_attends_to_itself():
    fusion = IntermediateFusion({"text": 12}, dim=16, heads=2, out_dim=8)
    present = torch.ones(B, 1, dtype=torch.bool)
    outs = {"text": encoder_outputs(0, torch.ones(B, 3, dtype=torch.bool))["text"]}
    assert fusion(outs, present).shape == (B, 8)
    assert fusion.pairs == [("text", "text")]


def test_intermediate_padding_is_ignored():
    fusion = IntermediateFusion(DIMS, dim=16, heads=2, out_dim=16).eval()
    present = torch.ones(B, 3, dtype=torch.bool)
    outs = encoder_outputs(0, present)
    padded = {m: EncoderOutput(torch.where(o.mask.unsqueeze(-1), o.tokens, torch.full_like(o.tokens, 50.0)),
                               o.mask, o.pooled) for m, o in outs.items()}
    with torch.no_grad():
        torch.testing.assert_close(fusion(outs, present), fusion(padded, present))


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


@pytest.mark.parametrize("build, text", [
    (lambda: LateFusion(DIMS, combine="weighted", weights=[0.6, 0.4]), "needs one weight per member"),
    (lambda: LateFusion(DIMS, combine="vote", member_loss_weight=0.0), "set fusion.member_loss_weight above 0"),
    (lambda: LateFusion(DIMS, combine="max"), "fusion.combine=max is not known"),
    (lambda: IntermediateFusion(DIMS, dim=30, heads=4), "fusion.dim=30 must be divisible by fusion.heads=4"),
    (lambda: HybridFusion(DIMS, groups={"x": ["text", "video"]}), "fusion.groups.x"),
    (lambda: EarlyFusion({}), "no modality"),
])
def test_bad_fusion_settings_fail_at_build_time(build, text):
    with pytest.raises(ConfigError, match=text):
        build()


def test_hybrid_default_groups():
    fusion = HybridFusion({"text": 4, "audio": 4})
    assert fusion.groups == {"text": ["text"], "audio": ["audio"], "all": ["text", "audio"]}
