"""Modality balance: unimodal aux heads with per-modality val metrics, and OGM-GE's gradient modulation."""

import math

import pandas as pd
import torch

from mmtrain.train import run
from mmtrain.training.balance import OGMGE, coefficients, confidences


def test_ogm_ge_scales_the_leading_encoders_gradients_as_its_formula_says():
    # two rows; modality a is sure of the true class, b is not
    aux = {"a": torch.tensor([[4.0, 0.0], [0.0, 4.0]]), "b": torch.tensor([[0.0, 0.0], [0.0, 0.0]])}
    target, present = torch.tensor([0, 1]), torch.ones(2, 2, dtype=torch.bool)
    p = math.exp(4) / (math.exp(4) + 1)
    sums, counts = confidences(aux, present, target)
    torch.testing.assert_close(sums, torch.tensor([2 * p, 1.0]))
    k = coefficients(sums, counts, alpha=0.5)  # mean confidences p and 0.5: rho_a = 2p
    torch.testing.assert_close(k, torch.tensor([1 - math.tanh(0.5 * 2 * p), 1.0]))
    # a row without modality a does not count for it; a modality with no row leaves every scale at 1
    sums, counts = confidences(aux, torch.tensor([[True, True], [False, True]]), target)
    assert sums[0] == p and counts.tolist() == [1.0, 2.0]
    assert coefficients(torch.tensor([1.5, 0.0]), torch.tensor([2.0, 0.0]), 0.5).tolist() == [1.0, 1.0]
    # applied to the encoders' gradients: a scaled, b as it was; with noise, of the gradient's own spread
    encoders = {"a": torch.nn.Linear(200, 50), "b": torch.nn.Linear(200, 50)}
    grads = {}
    for m, e in encoders.items():
        e.weight.grad = torch.randn(50, 200)
        grads[m] = e.weight.grad.clone()
    OGMGE(alpha=0.5, noise=False).modulate(encoders, k)
    torch.testing.assert_close(encoders["a"].weight.grad, grads["a"] * k[0])
    torch.testing.assert_close(encoders["b"].weight.grad, grads["b"])
    OGMGE(alpha=0.5, noise=True).modulate(encoders, torch.tensor([1.0, 1.0]))
    noise = encoders["b"].weight.grad - grads["b"]
    assert abs(noise.std().item() - grads["b"].std().item()) < 0.05


def test_aux_heads_log_each_modalitys_score_and_ogm_ge_trains(cfg_factory, tmp_path):
    metrics = run(
        cfg_factory(
            "model.aux_heads=true", "balance=ogm_ge", "trainer.max_epochs=2", "data.source.num_samples=160"
        )
    )
    frame = pd.read_csv(tmp_path / "run" / "metrics.csv").groupby("epoch").first()
    for m in ("text", "audio"):
        column = f"val/sentiment/{m}/f1_macro"
        assert column in frame and frame[column].notna().sum() == 2  # every epoch
        assert 0 <= frame[column].iloc[-1] <= 1
    assert math.isfinite(metrics["test/sentiment/f1_macro"])
    scales = frame[
        ["balance/text/k", "balance/audio/k"]
    ]  # OGM-GE's mean gradient scale per modality and epoch
    assert (
        scales.notna().all().all() and ((scales > 0) & (scales <= 1)).all().all() and (scales < 1).any().any()
    )


def test_aux_heads_skip_a_modality_too_rare_in_val_for_a_score(tmp_path):
    """Regression (r2 needs two rows) with the series present in one val row: its unimodal score is
    left out of that epoch's log, the run goes on, and the other modality's is logged."""
    import toy_data
    from conftest import make_cfg

    path = toy_data.build(tmp_path / "toy", rows=60)
    frame = pd.read_csv(path)
    val = frame.index[frame["split"] == "val"]
    frame.loc[val[1:], "series"] = None
    frame.to_csv(path, index=False)
    metrics = run(
        make_cfg(
            tmp_path / "run",
            f"data.path={path}",
            "data.split_column=split",
            "experiment=timeseries_regression",
            "data.on_bad_row=missing",
            "model.aux_heads=true",
            "trainer.max_epochs=2",
        )
    )
    assert math.isfinite(metrics["test/score/r2"])
    logged = pd.read_csv(tmp_path / "run" / "metrics.csv").columns
    assert "val/score/sentiment/r2" in logged and "val/score/series/r2" not in logged
