import math

import numpy as np
import pytest
import torch

from mmtrain.core.errors import ConfigError
from mmtrain.data.news_audio import generate
from mmtrain.tasks import TASKS
from mmtrain.tasks.losses import LossSettings, class_weights, positive_weights
from mmtrain.train import task_specs


def test_balanced_weights_match_hand_computation():
    # N / (C * n_c) with N = 100, C = 3
    assert class_weights([10, 60, 30], "balanced") == pytest.approx([100 / 30, 100 / 180, 100 / 90])


def test_effective_number_weights_match_cui_et_al():
    beta, counts = 0.9, [10, 60, 30]
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    expected = [w / sum(raw) * 3 for w in raw]
    assert class_weights(counts, "effective_number", beta) == pytest.approx(expected)
    # beta -> 0 means no reweighting
    assert class_weights(counts, "effective_number", 0.0) == pytest.approx([1.0, 1.0, 1.0])


def test_explicit_and_none_weights():
    assert class_weights([5, 5], [2.0, 0.5]) == [2.0, 0.5]
    assert class_weights([5, 5], "none") is None


def test_bad_class_weights_are_rejected():
    with pytest.raises(ConfigError, match="loss.class_weights=inverse is not known"):
        LossSettings.of({"class_weights": "inverse"})
    with pytest.raises(ConfigError, match="needs 3 non-negative weights"):
        class_weights([1, 2, 3], [1.0])


@pytest.mark.parametrize(
    "node, text",
    [
        ({"regression": "l1"}, "loss.regression=l1 is not known"),
        ({"pos_weight": "inverse"}, "loss.pos_weight=inverse is not known"),
        ({"beta": 1.0}, r"loss.beta=1.0 must be in \[0, 1\)"),
        ({"label_smothing": 0.1}, "did you mean loss.label_smoothing"),
    ],
)
def test_loss_settings_own_their_values(node, text):
    with pytest.raises(ConfigError, match=text):
        LossSettings.of(node)


def test_class_with_no_train_sample_is_rejected():
    with pytest.raises(ConfigError, match="has no train sample"):
        class_weights([0, 4, 4], "balanced")


def test_pos_weight_is_negatives_over_positives():
    assert positive_weights([10, 25], 100, "balanced") == pytest.approx([9.0, 3.0])


def test_weights_come_from_the_train_split_only(cfg_factory):
    cfg = cfg_factory("loss.class_weights=balanced", "head=multitask", "loss.pos_weight=balanced")
    table = generate(num_samples=240)
    specs = task_specs(cfg, table)
    train = table.split == "train"
    counts = np.bincount(table.targets["sentiment"][train], minlength=3)
    assert specs["sentiment"]["weights"] == pytest.approx(list(counts.sum() / (3 * counts)))
    positives = table.targets["tags"][train].sum(0)
    assert specs["tags"]["weights"] == pytest.approx(list((train.sum() - positives) / positives))


def test_weighted_cross_entropy_uses_the_weights():
    logits, target = torch.tensor([[2.0, 0.0], [0.0, 2.0]]), torch.tensor([1, 1])
    loss = TASKS.get("multiclass").loss({"weights": [1.0, 3.0]}, LossSettings())(logits, target)
    per_sample = torch.nn.functional.cross_entropy(logits, target, reduction="none")
    assert loss.item() == pytest.approx(((3 * per_sample).sum() / 6).item())
    huber = TASKS.get("regression").loss({}, LossSettings(regression="huber"))(
        torch.tensor([[3.0]]), torch.tensor([0.0])
    )
    assert huber.item() == pytest.approx(2.5)
    assert not math.isnan(huber.item())


def test_focal_loss_and_logit_adjustment_by_hand():
    logits, target = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 0.5]]), torch.tensor([0, 2])
    task = {"weights": None, "priors": [0.7, 0.2, 0.1]}
    p = logits.softmax(-1)[torch.arange(2), target]
    focal = TASKS.get("multiclass").loss(task, LossSettings(focal_gamma=2.0))(logits, target)
    assert focal.item() == pytest.approx(((1 - p) ** 2 * -p.log()).mean().item(), rel=1e-5)
    adjusted = TASKS.get("multiclass").loss(task, LossSettings(logit_adjust_tau=1.0))(logits, target)
    shifted = logits + torch.log(torch.tensor(task["priors"]))
    assert adjusted.item() == pytest.approx(
        torch.nn.functional.cross_entropy(shifted, target).item(), rel=1e-5
    )
    # A rare class's loss grows under logit adjustment: its logit must beat a prior handicap.
    plain = TASKS.get("multiclass").loss(task, LossSettings())(logits, target)
    assert adjusted > plain
    y = torch.tensor([[1.0, 0.0]])
    z = torch.tensor([[0.5, -0.5]])
    label_focal = TASKS.get("multilabel").loss({}, LossSettings(focal_gamma=2.0))(z, y)
    p_t = torch.sigmoid(torch.tensor([0.5, 0.5]))  # both labels right with p = sigmoid(0.5)
    assert label_focal.item() == pytest.approx(((1 - p_t) ** 2 * -p_t.log()).mean().item(), rel=1e-5)


def test_a_row_without_a_target_is_left_out_of_its_task_only():
    """Multi-task data: -1 (no class) and NaN (no value) rows count in neither the loss nor the metrics."""
    import torch

    from mmtrain.model.metrics import StageMetrics
    from mmtrain.model.module import LabelledLoss
    from mmtrain.tasks import TASKS
    from mmtrain.tasks.losses import LossSettings

    settings = LossSettings.of({})
    outputs, targets = torch.randn(6, 3), torch.tensor([0, 2, -1, 1, -1, 0])
    loss = LabelledLoss(TASKS.get("multiclass").loss({}, settings), "multiclass")
    known = targets >= 0
    assert torch.allclose(
        loss(outputs, targets), torch.nn.functional.cross_entropy(outputs[known], targets[known])
    )
    assert loss(outputs, torch.full((6,), -1)).item() == 0.0
    values = torch.tensor([1.0, float("nan"), 3.0])
    mse = LabelledLoss(TASKS.get("regression").loss({}, settings), "regression")
    assert torch.isclose(mse(torch.tensor([[2.0], [9.0], [3.0]]), values), torch.tensor(0.5))
    metrics = StageMetrics({"y": {"type": "multiclass", "classes": ["a", "b", "c"]}})
    metrics.update({"y": torch.nn.functional.one_hot(targets.clamp(min=0), 3).float() * 5}, {"y": targets})
    assert metrics.compute("val")["val/y/acc"] == 1.0
