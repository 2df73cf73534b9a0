"""Ensembles: greedy selection and cross-fitted stacking on saved val predictions, and the ensemble dir
as a model (predict, copied alone, one member = that run, members that differ are refused)."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_cfg
from hydra import compose, initialize_config_module
from hypothesis import given, settings
from hypothesis import strategies as st

from mmtrain import load_model
from mmtrain.core.errors import ConfigError
from mmtrain.data.news_audio import write_manifest
from mmtrain.ensemble import ensemble
from mmtrain.ensembling import selection
from mmtrain.train import run

MULTICLASS = {"type": "multiclass", "classes": ["a", "b", "c"]}


def noisy_members(seed: int, rows: int, count: int) -> tuple[list[np.ndarray], torch.Tensor]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, rows)
    members = []
    for _ in range(count):
        logits = rng.normal(size=(rows, 3)) + rng.uniform(0, 3) * np.eye(3)[y]
        members.append(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    return members, torch.as_tensor(y)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), count=st.integers(1, 6), rounds=st.integers(1, 12))
def test_greedy_never_scores_below_the_best_member_on_val_and_its_weights_sum_to_one(seed, count, rounds):
    members, y = noisy_members(seed, 120, count)
    score = selection.Scorer(MULTICLASS, y, "f1_macro", "max")
    weights = selection.greedy(members, score, rounds)
    assert weights.sum() == pytest.approx(1.0) and (weights >= 0).all()
    assert score(selection.average(members, weights)) >= max(score(m) for m in members) - 1e-9


def test_greedy_minimises_a_metric_in_min_mode():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200)
    good, bad = (y + 0.1 * rng.normal(size=200))[:, None], (y + 2.0 * rng.normal(size=200))[:, None]
    score = selection.Scorer({"type": "regression", "classes": None}, torch.as_tensor(y), "mae", "min")
    assert selection.greedy([bad, good], score, 5).tolist() == [0.0, 1.0]


def test_stacking_is_cross_fitted_so_noise_members_score_chance_on_val():
    """Members that know nothing (random probabilities): a stacker fitted and scored on the same val rows
    would find patterns in the noise; cross-fitted, its val accuracy stays near chance."""
    rng = np.random.default_rng(0)
    rows, y = 150, torch.as_tensor(rng.integers(0, 2, 150))
    task = {"type": "binary", "classes": ["no", "yes"]}
    members = [rng.dirichlet([1, 1], size=rows) for _ in range(30)]
    params, oof = selection.stack(task, members, y, folds=5, strength=0.01, seed=0)
    in_sample = selection.apply_linear(task, params, members)
    accuracy = lambda p: float((p.argmax(1) == y.numpy()).mean())  # noqa: E731
    assert accuracy(in_sample) > 0.7  # fitted on the rows it is scored on: leaks
    assert accuracy(oof) < 0.62  # out-of-fold: chance


def test_stacking_learns_which_member_to_trust():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(size=(300, 3)) + 2.0 * np.eye(3)[y]
    members = [np.exp(logits) / np.exp(logits).sum(1, keepdims=True), rng.dirichlet([1, 1, 1], size=300)]
    y = torch.as_tensor(y)
    params, oof = selection.stack(MULTICLASS, members, y, folds=5, strength=1.0, seed=0)
    score = selection.Scorer(MULTICLASS, y, "acc", "max")
    assert score(oof) >= score(members[0]) - 0.03 and score(oof) > 0.6


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two small news_audio runs (late and intermediate fusion) in one folder, and the data as a file."""
    root = tmp_path_factory.mktemp("ensemble")
    for name, fusion in (("late", "late"), ("mid", "intermediate")):
        run(make_cfg(root / "sweep" / name, "trainer.max_epochs=3", f"fusion={fusion}"))
    return root / "sweep", write_manifest(root / "data", num_samples=240)


def ensemble_cfg(runs, *overrides):
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        return compose("ensemble", overrides=[f"runs={runs}", *overrides])


def test_an_ensemble_dir_predicts_like_a_run_dir_and_alone_when_copied(runs, tmp_path):
    sweep, manifest = runs
    metrics = ensemble(ensemble_cfg(sweep, f"output={tmp_path / 'ens'}"))
    assert {"val/sentiment/f1_macro", "test/sentiment/f1_macro", "test/sentiment/acc"} <= set(metrics)
    frame = pd.read_csv(manifest).drop(columns=["sentiment", "tags", "move"])
    preds = load_model(tmp_path / "ens").predict(frame, root=manifest.parent)
    probs = preds.filter(like="prob_sentiment_").to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert {"id", "pred_sentiment", "present_text", "present_audio"} <= set(preds.columns)
    shutil.copytree(tmp_path / "ens", tmp_path / "elsewhere" / "copy")
    shutil.rmtree(tmp_path / "ens")
    again = load_model(tmp_path / "elsewhere" / "copy").predict(frame, root=manifest.parent)
    pd.testing.assert_frame_equal(preds, again)


def test_an_ensemble_of_one_run_predicts_exactly_that_run(runs, tmp_path):
    sweep, manifest = runs
    ensemble(ensemble_cfg(sweep / "late", f"output={tmp_path / 'one'}"))
    frame = pd.read_csv(manifest).drop(columns=["sentiment", "tags", "move"])
    alone = load_model(sweep / "late").predict(frame, root=manifest.parent)
    one = load_model(tmp_path / "one").predict(frame, root=manifest.parent)
    np.testing.assert_allclose(
        one.filter(like="prob_").to_numpy(), alone.filter(like="prob_").to_numpy(), atol=1e-6
    )
    assert (one["pred_sentiment"] == alone["pred_sentiment"]).all()


def test_the_ensemble_scores_its_members_from_their_saved_predictions(runs, tmp_path):
    """Stacking and greedy both read the members' val/test predictions; a member's val score computed
    from them is the one its run wrote (nothing ran again)."""
    import json

    sweep, _ = runs
    for method in ("greedy", "stack"):
        metrics = ensemble(ensemble_cfg(sweep, f"output={tmp_path / method}", f"ensemble.method={method}"))
        assert 0.0 <= metrics["test/sentiment/f1_macro"] <= 1.0
    report = (tmp_path / "greedy" / "report.md").read_text()
    late = json.loads((sweep / "late" / "metrics.json").read_text())["val/sentiment/f1_macro"]
    assert f"{late:.4f}" in report and "disagree" in report
    assert (tmp_path / "greedy" / "disagreement_sentiment.png").is_file()


def test_members_with_different_splits_are_refused_naming_the_run(runs, tmp_path):
    sweep, _ = runs
    folder = tmp_path / "mixed"
    shutil.copytree(sweep / "late", folder / "late")
    shutil.copytree(sweep / "mid", folder / "other")
    val = pd.read_parquet(folder / "other" / "predictions" / "val.parquet")
    val.iloc[:-1].to_parquet(folder / "other" / "predictions" / "val.parquet", index=False)
    with pytest.raises(ConfigError, match=r"other cannot join an ensemble with late: its val rows differ"):
        ensemble(ensemble_cfg(folder))


def test_failed_runs_are_skipped_and_listed(runs, tmp_path):
    sweep, _ = runs
    folder = tmp_path / "sweep"
    shutil.copytree(sweep / "late", folder / "late")
    (folder / "broken").mkdir()
    (folder / "broken" / "failed.json").write_text('{"error": "ValueError: NaN loss at epoch 2"}')
    ensemble(ensemble_cfg(folder))
    report = (folder / "ensemble" / "report.md").read_text()
    assert "`broken`: failed: ValueError: NaN loss at epoch 2" in report


def test_export_of_an_ensemble_says_to_export_each_member(runs, tmp_path):
    from mmtrain.export import export

    sweep, _ = runs
    ensemble(ensemble_cfg(sweep, f"output={tmp_path / 'ens'}"))
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        cfg = compose("export", overrides=[f"run={tmp_path / 'ens'}", f"output={tmp_path / 'onnx'}"])
    with pytest.raises(ConfigError, match="export each member instead"):
        export(cfg)


@pytest.mark.parametrize(
    "override, message",
    [
        ("ensemble.method=vote", "ensemble.method=vote is not known: use greedy or stack"),
        ("ensemble.size=0", r"ensemble.size=0 must be 1 or more"),
    ],
)
def test_bad_ensemble_settings_are_named(runs, tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        ensemble(ensemble_cfg(runs[0], f"output={tmp_path / 'e'}", override))
