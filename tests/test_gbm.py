"""model=gbm: boosted trees on a messy table (missing numbers and categories, `?` cells, an id), the same
run dir as a network (metrics, predictions, report with importance), predicted through load_model, and a
member of an ensemble beside a network."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import make_cfg

from mmtrain import load_model
from mmtrain.core.errors import ConfigError
from mmtrain.train import run


def messy_table(rows: int, seed: int) -> pd.DataFrame:
    """y depends on a number (with 20 % missing, `?` in some cells) and a category (with empty cells);
    the missing flag itself carries signal, as it often does in real data."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    missing = rng.random(rows) < 0.2
    score = x + np.where(colour == "red", 1.5, 0.0) + np.where(missing, 1.0, 0.0)
    y = np.where(score > 0.8, "high", np.where(score > -0.5, "mid", "low"))
    number = np.where(missing, np.nan, x).astype(object)
    number[np.flatnonzero(missing)[::3]] = "?"
    colour = colour.astype(object)
    colour[rng.random(rows) < 0.1] = None
    noise = rng.normal(size=rows).round(3)
    return pd.DataFrame(
        {"id": [f"r{i:04d}" for i in range(rows)], "x": number, "colour": colour, "noise": noise, "y": y}
    )


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gbm")
    path = folder / "table.csv"
    messy_table(600, 0).to_csv(path, index=False)
    return path


def gbm_cfg(out, path, *overrides):
    return make_cfg(
        out,
        "model=gbm",
        "data=manifest",
        f"data.path={path}",
        "++data.targets.y.column=y",
        "model.early_stopping=20",
        *overrides,
    )


def test_gbm_on_a_messy_table_beats_chance_and_writes_a_run_dir(table, tmp_path):
    metrics = run(gbm_cfg(tmp_path / "run", table))
    assert metrics["test/y/acc"] > 0.6 and metrics["val/y/f1_macro"] > 0.5  # chance: ~0.33
    run_dir = tmp_path / "run"
    for name in ("metrics.json", "run.json", "report.md", "importance.csv", "importance.png", "gbm/y.txt"):
        assert (run_dir / name).is_file(), name
    importance = pd.read_csv(run_dir / "importance.csv")
    # the signal is in x (and its missingness) and colour, not in the noise column
    shares = importance.set_index("feature")["share"]
    assert shares["x"] > shares["noise"] and shares["colour"] > shares["noise"]
    assert "What the trees use" in (run_dir / "report.md").read_text()
    val = pd.read_parquet(run_dir / "predictions" / "val.parquet")
    assert len(val) == json.loads((run_dir / "run.json").read_text())["splits"]["val"]["rows"]


def test_a_gbm_run_predicts_new_rows_with_missing_cells_as_training_read_them(table, tmp_path):
    run(gbm_cfg(tmp_path / "run", table))
    new = messy_table(50, 1).drop(columns=["y"])
    new.loc[0, ["x", "colour", "noise"]] = ["?", None, None]  # every input missing
    new.loc[1, "colour"] = "purple"  # never seen in training
    preds = load_model(tmp_path / "run").predict(new)
    probs = preds[["prob_y_high", "prob_y_low", "prob_y_mid"]].to_numpy()
    assert len(preds) == 50 and np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    # the run's own test predictions are what load_model gives for those rows
    frame = pd.read_csv(table)
    test = pd.read_parquet(tmp_path / "run" / "predictions" / "test.parquet")
    again = load_model(tmp_path / "run").predict(frame.set_index("id").loc[test["id"]].reset_index())
    np.testing.assert_allclose(
        again[["prob_y_high", "prob_y_low", "prob_y_mid"]].to_numpy(),
        test[["prob_y_high", "prob_y_low", "prob_y_mid"]].to_numpy(),
        atol=1e-6,
    )


def test_gbm_needs_a_frozen_encoder_for_text(tmp_path):
    frame = messy_table(200, 2).assign(
        note=lambda f: ["a rather long free text note number %d" % i for i in range(200)]
    )
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(ConfigError, match="frozen pretrained encoder"):
        run(
            gbm_cfg(
                tmp_path / "run",
                path,
                "++data.modalities.note.type=text",
                "++data.modalities.tab.columns=[x]",
            )
        )


def test_a_gbm_run_and_a_network_join_one_ensemble(table, tmp_path):
    from hydra import compose, initialize_config_module

    from mmtrain.ensemble import ensemble

    run(gbm_cfg(tmp_path / "runs" / "gbm", table))
    run(
        make_cfg(
            tmp_path / "runs" / "mlp",
            "data=manifest",
            f"data.path={table}",
            "++data.targets.y.column=y",
            "trainer.max_epochs=3",
        )
    )
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        cfg = compose("ensemble", overrides=[f"runs={tmp_path / 'runs'}"])
    metrics = ensemble(cfg)
    spec = json.loads((tmp_path / "runs" / "ensemble" / "ensemble.json").read_text())
    assert len(spec["members"]) == 2 and metrics["val/y/f1_macro"] >= 0.5
    rows = pd.read_csv(table).drop(columns=["y"])
    preds = load_model(tmp_path / "runs" / "ensemble").predict(rows)
    assert len(preds) == 600 and preds["pred_y"].isin(["high", "mid", "low"]).all()
    from mmtrain.serving.workers import Worker  # mmtrain-serve's worker process serves it like a run

    worker = Worker(tmp_path / "runs" / "ensemble", "cpu", 1, timeout_s=120)
    try:
        served = worker.predict(rows.head(5), checked=False)
    finally:
        worker.close()
    probs = ["prob_y_high", "prob_y_low", "prob_y_mid"]
    np.testing.assert_allclose(served[probs].to_numpy(), preds[probs].head(5).to_numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.kind=forest", "model.kind=forest is not known: choose model=neural or model=gbm"),
        ("model.num_leaves=1", "model.num_leaves=1 must be a whole number of 2 or more"),
        ("model.learning_rate=0", "model.learning_rate=0 must be a positive float"),
        ("model.embedding_dims=0", "model.embedding_dims=0 must be a whole number of 1 or more, or null"),
    ],
)
def test_bad_gbm_settings_are_named(table, tmp_path, override, message):
    from mmtrain.config.validate import validate

    with pytest.raises(ConfigError, match=message):
        validate(gbm_cfg(tmp_path / "run", table, override))


def test_bagging_a_cv_run_uses_out_of_fold_val_and_averages_the_fold_models(table, tmp_path):
    from hydra import compose, initialize_config_module

    from mmtrain.ensemble import ensemble

    run(gbm_cfg(tmp_path / "cv", table, "cv.folds=3"))
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        metrics = ensemble(compose("ensemble", overrides=[f"runs={tmp_path / 'cv'}"]))
    out = tmp_path / "cv" / "ensemble"
    val = pd.read_parquet(out / "predictions" / "val.parquet")
    folds = [pd.read_parquet(tmp_path / "cv" / f"fold_{k}" / "predictions" / "val.parquet") for k in range(3)]
    assert len(val) == sum(
        len(f) for f in folds
    )  # every train + val row, each scored by the fold that held it out
    assert metrics["val/y/acc"] > 0.6
    frame = pd.read_csv(table)
    new = frame.drop(columns=["y"]).head(20)
    columns = ["prob_y_high", "prob_y_low", "prob_y_mid"]
    bagged = load_model(out).predict(new)[columns].to_numpy()
    each = [load_model(tmp_path / "cv" / f"fold_{k}").predict(new)[columns].to_numpy() for k in range(3)]
    np.testing.assert_allclose(bagged, np.mean(each, axis=0), atol=1e-6)


@pytest.mark.parametrize("which", ["gbm", "ensemble"])
def test_mmtrain_evaluate_scores_a_gbm_run_and_an_ensemble_as_their_own_predictions(table, tmp_path, which):
    from hydra import compose, initialize_config_module

    from mmtrain.ensemble import ensemble
    from mmtrain.evaluate import evaluate

    run(gbm_cfg(tmp_path / "runs" / "gbm", table))
    run_dir = tmp_path / "runs" / "gbm"
    if which == "ensemble":
        with initialize_config_module("mmtrain.conf", version_base="1.3"):
            ensemble(compose("ensemble", overrides=[f"runs={tmp_path / 'runs'}"]))
        run_dir = tmp_path / "runs" / "ensemble"
    labelled = tmp_path / "labelled.csv"
    pd.read_csv(table).assign(part=lambda f: np.where(np.arange(len(f)) < 300, "a", "b")).to_csv(labelled)
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        cfg = compose(
            "evaluate",
            overrides=[
                f"run={run_dir}",
                f"data.path={labelled}",
                "data.split_column=part",
                f"paths.output_dir={tmp_path / 'e'}",
            ],
        )
    metrics = evaluate(cfg)
    assert metrics["a/y/acc"] > 0.6 and metrics["b/y/acc"] > 0.6 and "b/y/f1_macro" in metrics
    report = (tmp_path / "e" / "report.md").read_text()
    assert "| metric | a | b |" in report and "| y/f1_macro |" in report
