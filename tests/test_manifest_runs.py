"""Training on users' manifests end to end: the seed scenarios, preprocessing that travels with the
checkpoint, extra test splits, encoder choice per modality, and bad input through the CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import toy_data
from conftest import make_cfg, run_cli

from mmtrain.train import run

QUICK = [
    "trainer.max_epochs=8",
    "optim.optimizer.lr=3e-3",
    "data.batch_size=16",
    "encoder/image=cnn",
    "encoder.image.image_size=16",
    "encoder.image.layers=2",
    "encoder.image.width=8",
    "callbacks.early_stopping.patience=8",
]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return toy_data.build(tmp_path_factory.mktemp("toy"), rows=90)


def train(tmp_path, toy, *overrides):
    cfg = make_cfg(tmp_path / "run", f"data.path={toy}", "data.split_column=split", *QUICK, *overrides)
    return run(cfg), cfg


SCENARIOS = {  # experiment -> (extra overrides, metric, better than)
    "image_text_tabular_multilabel": ([], "test/tags/f1_macro", 0.6),
    "multitask_heads": ([], "test/sentiment/f1_macro", 0.6),
    "numeric_categorical": ([], "test/label/f1_macro", 0.6),  # chance: 1/3
    "timeseries_regression": (["++data.modalities.sentiment.numeric=[shares]"], "test/score/r2", 0.3),
    "labs_image": ([], "test/diagnosis/f1_macro", 0.6),
    "late_text_tabular": ([], "test/label/f1_macro", 0.6),
}


@pytest.mark.parametrize("experiment", list(SCENARIOS))
def test_seed_scenario_learns(tmp_path, toy, experiment):
    extra, metric, floor = SCENARIOS[experiment]
    metrics, cfg = train(tmp_path, toy, f"experiment={experiment}", *extra)
    assert metrics[metric] > floor, metrics
    if experiment == "multitask_heads":
        assert {k.split("/")[1] for k in metrics} == {"sentiment", "category", "tags"}
        assert (cfg.head.category.loss_weight, cfg.head.tags.loss_weight, cfg.head.sentiment.loss_weight) == (
            0.5,
            0.5,
            1.0,
        )
    if experiment == "image_text_tabular_multilabel":
        assert {"test/tags/f1/alpha", "test/tags/f1/beta", "test/tags/f1/gamma", "test/tags/ap"} <= set(
            metrics
        )


def test_late_fusion_by_vote(tmp_path, toy):
    metrics, cfg = train(tmp_path, toy, "experiment=late_text_tabular", "fusion.combine=vote")
    assert cfg.fusion.combine == "vote" and metrics["test/label/f1_macro"] > 0.6


def test_preprocessing_travels_with_the_checkpoint(tmp_path, toy):
    metrics, _ = train(tmp_path, toy, "experiment=numeric_categorical")
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=True)
    pre = ckpt["hyper_parameters"]["model_cfg"]["encoder"]["categorical"]["preprocessing"]
    assert pre["vocab"] == [["de", "fr", "us"]]
    # Evaluating the checkpoint on a manifest whose test rows now hold unseen and shifted values must
    # use the train statistics saved in the checkpoint, not refit them on the new file.
    frame = pd.read_csv(toy)
    frame.loc[frame.split == "train", "likes"] += 100.0
    frame.to_csv(tmp_path / "shifted.csv", index=False)
    for media in ("media",):
        (tmp_path / media).symlink_to(toy.parent / media)
    again = run(
        make_cfg(
            tmp_path / "eval",
            f"data.path={tmp_path / 'shifted.csv'}",
            "data.split_column=split",
            *QUICK,
            "experiment=numeric_categorical",
            "train=false",
            f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'best.ckpt'}",
        )
    )
    assert again["test/label/f1_macro"] == pytest.approx(metrics["test/label/f1_macro"])


def test_extra_test_split_is_reported_under_its_name(tmp_path, toy):
    frame = pd.read_csv(toy)
    frame.loc[frame.index[-9:], "split"] = "holdout"
    frame.to_csv(toy.parent / "holdout.csv", index=False)
    metrics, _ = train(
        tmp_path,
        toy.parent / "holdout.csv",
        "data=manifest",
        "++data.targets.label.column=label",
        "data.test_splits=[test,holdout]",
        "modalities=[image]",
    )
    assert {"test/label/acc", "holdout/label/acc", "val/label/acc"} <= set(metrics)
    assert (tmp_path / "run" / "confusion_label_holdout.png").is_file()
    config = json.loads(
        json.dumps(
            torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=True)["hyper_parameters"][
                "modalities"
            ]
        )
    )
    assert config == ["image"]


def test_a_modality_gets_its_type_default_or_a_named_encoder(tmp_path, toy):
    base = [
        f"data.path={toy}",
        "data=manifest",
        "++data.targets.label.column=label",
        "++data.modalities.meta={type: tabular, numeric: [likes], categorical: [country]}",
    ]
    from mmtrain.train import prepare

    module, _ = prepare(make_cfg(tmp_path / "a", *base, *QUICK))
    assert type(module.model.encoders["meta"]).__name__ == "TabularMLPEncoder"  # encoder.tabular
    module, _ = prepare(
        make_cfg(tmp_path / "b", *base, *QUICK, "+encoder/tabular@encoder_for.meta=ft_transformer")
    )
    assert type(module.model.encoders["meta"]).__name__ == "FTTransformerEncoder"
    from mmtrain.export import signature

    meta = next(i for i in signature(module)["inputs"] if i["name"] == "meta_x")
    fitted = meta["preprocessing"]  # the values, not only their description
    assert fitted["numeric"] == ["likes"] and fitted["vocab"] == [["de", "fr", "us"]]
    assert len(fitted["mean"]) == len(fitted["std"]) == 1


def test_modality_names_and_type_names_do_not_mix(tmp_path, toy):
    # A text column the user calls `image` is text: it gets encoder.text, not the image encoder.
    base = [
        f"data.path={toy}",
        "data=manifest",
        "++data.targets.label.column=label",
        "++data.modalities.image.column=text",
        "++data.modalities.photo.column=image",
    ]
    from mmtrain.core.errors import ConfigError
    from mmtrain.train import prepare

    module, _ = prepare(make_cfg(tmp_path / "a", *base, *QUICK))
    assert type(module.model.encoders["image"]).__name__ == "ScratchTextEncoder"
    assert type(module.model.encoders["photo"]).__name__ == "ImageCNNEncoder"
    with pytest.raises(ConfigError, match=r"encoder.photo: not a modality type .*encoder_for.photo"):
        prepare(make_cfg(tmp_path / "b", *base, *QUICK, "+encoder/image@encoder.photo=cnn"))


def test_fine_tuning_groups_layer_wise_lrs_and_no_decay_on_1d(tmp_path, toy):
    from mmtrain.model.optim import OptimSettings, param_groups
    from mmtrain.train import prepare

    cfg = make_cfg(
        tmp_path / "run",
        f"data.path={toy}",
        "data=manifest",
        "++data.targets.label.column=label",
        "++data.modalities.text.column=text",
        "++data.modalities.meta.numeric=[likes]",
        "encoder/text=minilm",
        "encoder.text.freeze=false",
        "optim.encoder_lr=1e-4",
        "optim.layer_decay=0.5",
        "optim.optimizer.lr=1e-3",
        "optim.optimizer.weight_decay=0.01",
    )
    module, _ = prepare(cfg)
    settings = OptimSettings.of(module.hparams.model_cfg["optim"])
    groups = param_groups(settings, module, {"text": module.model.encoders["text"]})
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    bert = dict(module.model.encoders["text"].model.named_parameters())
    # MiniLM: embeddings (layer 0), 6 blocks (1..6), the pooler on top (7): lr 1e-4 x 0.5^(7 - layer)
    assert lr_of[id(bert["encoder.layer.5.output.dense.weight"])] == pytest.approx(1e-4 * 0.5)
    assert lr_of[id(bert["encoder.layer.0.output.dense.weight"])] == pytest.approx(1e-4 * 0.5**6)
    assert lr_of[id(bert["embeddings.word_embeddings.weight"])] == pytest.approx(1e-4 * 0.5**7)
    assert lr_of[id(bert["pooler.dense.weight"])] == pytest.approx(1e-4)
    head = module.model.heads["label"].net[-1]
    assert lr_of[id(head.weight)] == pytest.approx(1e-3) and wd_of[id(head.weight)] == 0.01
    assert wd_of[id(head.bias)] == 0.0 and wd_of[id(bert["encoder.layer.3.output.LayerNorm.weight"])] == 0.0
    assert wd_of[id(bert["encoder.layer.3.output.dense.weight"])] == 0.01
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in module.parameters())


def test_cli_bad_row_exits_2_and_writes_nothing_over(tmp_path, toy):
    frame = pd.read_csv(toy)
    frame.loc[3, "image"] = "media/gone.png"
    bad = toy.parent / "bad.csv"
    frame.to_csv(bad, index=False)
    before = bad.read_bytes()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text('{"earlier": 1}')
    result = run_cli(
        "data=manifest",
        f"data.path={bad}",
        "data.targets.label.column=label",
        "data.modalities.image.column=image",
        "data.split_column=split",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 2
    assert "data: 1 of 90 rows are bad (first: row 3 (id s003): image: file not found" in result.stderr
    assert "data.on_bad_row=skip" in result.stderr
    assert bad.read_bytes() == before  # the manifest is untouched
    assert (run_dir / "metrics.json").read_text() == '{"earlier": 1}'  # earlier results kept
    assert not (run_dir / "checkpoints").exists()
    assert "gone.png" in (run_dir / "bad_rows.csv").read_text()
