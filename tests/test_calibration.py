"""Calibration that never hurts: the temperature (and multilabel thresholds) fitted on val are kept
only when, fitted on one half of val, they help on the other; the reliability diagram rests on
equal-count bins."""

from __future__ import annotations

import torch

from mmtrain.evaluation.analysis import reliability
from mmtrain.evaluation.calibration import fit_checked
from mmtrain.tasks import TASKS
from mmtrain.tasks.multiclass import Multiclass


def overconfident(n: int, seed: int = 0):
    """Logits 4x too sharp: the right class has probability ~0.7 in truth, the model says ~0.99."""
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, 3, (n,), generator=g)
    right = torch.rand(n, generator=g) < 0.7
    predicted = torch.where(right, targets, (targets + 1) % 3)
    return torch.nn.functional.one_hot(predicted, 3).float() * 6.0, targets


def test_a_temperature_that_helps_on_held_out_rows_is_kept():
    calibration = fit_checked(TASKS.get("multiclass"), *overconfident(400), {})
    assert calibration["temperature"] > 2 and "note" not in calibration


class Overfits(Multiclass):
    """A fit that looks good on its own rows only (a temperature far too sharp)."""

    def fit_calibration(self, outputs, targets, settings):
        return {"temperature": 0.05}


def test_a_temperature_that_does_not_help_on_held_out_rows_is_dropped_with_a_note():
    calibration = fit_checked(Overfits(), *overconfident(400), {})
    assert calibration["temperature"] == 1.0
    assert calibration["note"] == "the temperature did not lower the NLL on held-out halves of val: not used"


def test_too_small_a_val_split_is_not_calibrated():
    calibration = fit_checked(TASKS.get("multiclass"), *overconfident(45), {})
    assert calibration["temperature"] == 1.0 and calibration["note"].startswith("not fitted: val has 45 rows")


def test_multilabel_thresholds_that_help_on_held_out_rows_are_kept():
    g = torch.Generator().manual_seed(1)
    targets = (torch.rand(400, 3, generator=g) < 0.3).float()
    outputs = (
        targets * 3 - 3.5 + 0.5 * torch.randn(400, 3, generator=g)
    )  # positives mostly below 0.5: a lower cut helps
    calibration = fit_checked(TASKS.get("multilabel"), outputs, targets, {})
    assert "note" not in calibration and all(t < 0.5 for t in calibration["thresholds"])


def test_reliability_bins_hold_equal_counts():
    outputs, targets = overconfident(100)
    outputs = outputs + torch.randn(outputs.shape, generator=torch.Generator().manual_seed(0))
    rows = reliability(
        {"y": {"type": "multiclass", "classes": ["a", "b", "c"]}}, {"y": outputs}, {"y": targets}, {}
    )
    raw = [r for r in rows if r["variant"] == "raw"]
    assert [r["count"] for r in raw] == [20] * 5
    assert all(r["lower"] - 1e-6 <= r["confidence"] <= r["upper"] + 1e-6 for r in raw)
    assert [r["upper"] for r in raw] == sorted(r["upper"] for r in raw)
