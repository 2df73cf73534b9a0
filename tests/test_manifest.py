"""Manifest datasets: formats, type inference, targets, splits, train-only preprocessing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import toy_data

from mmtrain.core.errors import ConfigError
from mmtrain.data.manifest import ManifestSettings, load_manifest, read_manifest, used_columns
from mmtrain.modalities.tabular import apply as apply_tabular

TARGET = {"label": {"column": "label"}}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return toy_data.build(tmp_path_factory.mktemp("toy"), rows=60)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_every_format_gives_the_same_table(tmp_path, fmt):
    table = load_manifest(
        toy_data.build(tmp_path, rows=30, fmt=fmt),
        targets=TARGET,
        split_column="split",
        modalities={"text": {}, "audio": {}, "meta": {"numeric": ["likes"], "categorical": ["country"]}},
    )
    assert table.modality_types == {"text": "text", "audio": "audio", "meta": "tabular"}
    assert table.tasks["label"].classes == ["neg", "neu", "pos"]
    assert list(table.targets["label"][:3]) == [0, 1, 2]
    assert table.modalities["audio"][0] == tmp_path / "media" / "0.wav"  # relative to the manifest's folder
    assert table.modalities["text"][1] == "a steady sports report number 1"


def test_parquet_shards_in_a_folder_or_glob_are_one_manifest_read_without_unused_columns(tmp_path):
    frame = pd.read_csv(toy_data.build(tmp_path, rows=30))
    shards = tmp_path / "shards"
    shards.mkdir()
    frame["audio"] = "../" + frame["audio"]  # media paths are relative to the folder named
    for i, start in enumerate(range(0, 30, 10)):
        part = frame.iloc[start : start + 10]
        part.to_parquet(shards / f"part-{i}.parquet", index=False)
    kwargs = {"targets": TARGET, "split_column": "split", "modalities": {"text": {}, "audio": {}}}
    whole = load_manifest(tmp_path / "manifest.csv", **kwargs)
    for path in (shards, shards / "part-*.parquet", tmp_path):  # tmp_path holds one manifest.csv
        table = load_manifest(path, **kwargs)
        assert (
            table.modalities["text"] == whole.modalities["text"]
            and table.split.tolist() == whole.split.tolist()
        )
        assert table.modalities["audio"][0].resolve() == whole.modalities["audio"][0].resolve()
    used = used_columns(shards, kwargs["modalities"], TARGET, ManifestSettings(split_column="split"))
    assert used == ["id", "audio", "text", "label", "split"]  # the file's order; likes, image, ... never read
    assert list(read_manifest(shards, columns=used).columns) == used
    with pytest.raises(ConfigError, match="no manifest.* file and no .parquet shards"):
        load_manifest(tmp_path / "media", **kwargs)
    with pytest.raises(ConfigError, match="matches no file"):
        load_manifest(shards / "nothing-*.parquet", **kwargs)


def test_types_are_inferred_and_the_mapping_printed(toy, caplog):
    with caplog.at_level("INFO"):
        table = load_manifest(
            toy,
            targets={"label": {}, "tags": {}, "score": {}},
            split_column="split",
            ignore_columns=["shares", "sentiment", "category"],
        )
    assert table.modality_types == {
        "audio": "audio",
        "image": "image",
        "text": "text",
        "series": "sequence",
        "tabular": "tabular",
    }
    assert table.preprocessing["tabular"]["numeric"] == ["likes"]
    assert table.preprocessing["tabular"]["categorical"] == ["country"]
    assert {t: s.type for t, s in table.tasks.items()} == {
        "label": "multiclass",
        "tags": "multilabel",
        "score": "regression",
    }
    assert table.targets["tags"][2].tolist() == [1, 1, 1] and table.targets["tags"][0].tolist() == [1, 0, 0]
    assert table.modalities["series"][0].shape[1] == 2
    printed = caplog.text
    assert "modality image        image     <- image (type inferred)" in printed
    assert "target   tags         multilabel <- tags (3 labels; type inferred)" in printed


def test_binary_target_from_two_values(tmp_path):
    path = toy_data.build(tmp_path, rows=30)
    frame = pd.read_csv(path)
    frame["flag"] = frame["label"].eq("pos").map({True: "yes", False: "no"})
    frame.to_csv(path, index=False)
    table = load_manifest(path, modalities={"text": {}}, targets={"flag": {}}, split_column="split")
    assert table.tasks["flag"].type == "binary" and table.tasks["flag"].classes == ["no", "yes"]


def test_seeded_stratified_split(toy):
    kwargs = dict(modalities={"text": {}}, targets=TARGET, split_fractions=[0.6, 0.2, 0.2])
    first, again = load_manifest(toy, split_seed=1, **kwargs), load_manifest(toy, split_seed=1, **kwargs)
    other = load_manifest(toy, split_seed=2, **kwargs)
    assert (first.split == again.split).all() and not (first.split == other.split).all()
    for split, share in (("train", 0.6), ("val", 0.2), ("test", 0.2)):
        counts = np.bincount(first.targets["label"][first.split == split], minlength=3)
        assert counts.tolist() == [round(20 * share)] * 3  # 20 rows per class, split class by class


def test_tabular_preprocessing_is_fitted_on_train_only(tmp_path):
    path = toy_data.build(tmp_path, rows=30)
    frame = pd.read_csv(path)
    frame.loc[frame.split == "test", "likes"] = 1000.0  # test values must not move the statistics
    frame.loc[0, "likes"] = np.nan  # a train gap: imputed and flagged
    frame.loc[frame.split == "test", "country"] = "jp"  # unseen category: the unknown bucket
    frame.to_csv(path, index=False)
    table = load_manifest(
        path,
        modalities={"meta": {"numeric": ["likes"], "categorical": ["country"]}},
        targets=TARGET,
        split_column="split",
    )
    pre = table.preprocessing["meta"]
    train_likes = frame.likes[frame.split == "train"]
    assert pre["mean"][0] == pytest.approx(train_likes.mean())
    assert pre["vocab"] == [["de", "fr", "us"]]
    features = apply_tabular(pre, table.modalities["meta"])
    assert features[0][0].tolist() == [0.0, 1.0, pytest.approx(features[0][0][2].item())]  # imputed, flagged
    test_row = int(np.flatnonzero(table.split == "test")[0])
    assert features[test_row][0, 2].item() == 0  # "jp" -> unknown
    assert features[test_row][0, 0].item() == pytest.approx((1000 - pre["mean"][0]) / pre["std"][0])


def test_extra_test_split_and_subset_of_modalities(tmp_path):
    path = toy_data.build(tmp_path, rows=30)
    frame = pd.read_csv(path)
    frame.loc[frame.index[-6:], "split"] = "holdout"
    frame.to_csv(path, index=False)
    table = load_manifest(
        path,
        modalities={"text": {}, "image": {}},
        targets=TARGET,
        split_column="split",
        test_splits=["test", "holdout"],
        use=["image"],
    )
    assert list(table.modalities) == ["image"] and len(table.indices("holdout")) == 6


def test_feature_column_lengths_for_bucketing_count_a_missing_row_as_empty():
    import torch

    from mmtrain.data.datamodule import FeatureColumn

    empty = torch.zeros(0, 4)
    column = FeatureColumn([torch.zeros(3, 4), torch.zeros(5, 4)], np.array([True, False, True]), empty)
    assert column.lengths(np.array([2, 1, 0])).tolist() == [5, 0, 3]
    assert column[1] is empty
    nobody = FeatureColumn([], np.zeros(3, dtype=bool), empty)  # no row has the modality
    assert nobody.lengths(np.arange(3)).tolist() == [0, 0, 0]
