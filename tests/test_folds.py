"""Group validation splits and k-fold cross-validation: folds disjoint, stratified, groups kept whole,
test rows untouched; cv.folds end to end with the mean, std and each fold in metrics.json."""

import json

import numpy as np
import pytest
from conftest import make_cfg

from mmtrain.core.errors import ConfigError
from mmtrain.data.folds import fold_split, group_holdout, group_split
from mmtrain.train import prepare, run

rng = np.random.default_rng(0)
N = 300
SPLIT = np.where(np.arange(N) % 10 == 9, "test", np.where(np.arange(N) % 10 == 8, "val", "train"))
LABELS = rng.choice(["a", "b", "c"], N, p=[0.6, 0.3, 0.1])
GROUPS = np.array([f"g{i % 17}" for i in rng.permutation(N)])
POOL = SPLIT != "test"


@pytest.mark.parametrize("groups", [None, GROUPS])
def test_folds_are_disjoint_cover_train_and_val_are_stratified_and_keep_groups_whole(groups):
    vals = [fold_split(SPLIT, LABELS, groups, 5, i, seed=0) == "val" for i in range(5)]
    assert all((SPLIT[v] != "test").all() for v in vals)  # test rows never move
    assert all((fold_split(SPLIT, LABELS, groups, 5, i, seed=0)[~POOL] == "test").all() for i in range(5))
    assert (np.sum(vals, axis=0)[POOL] == 1).all()  # each train/val row is val in exactly one fold
    for v in vals:  # the rare class's share in every fold is about its share overall
        assert abs(np.mean(LABELS[v] == "c") - np.mean(LABELS[POOL] == "c")) < (
            0.04 if groups is None else 0.08
        )
    if groups is not None:  # no group on both sides of a fold
        for i, v in enumerate(vals):
            assert not set(groups[v]) & set(
                groups[fold_split(SPLIT, LABELS, groups, 5, i, seed=0) == "train"]
            )


def test_group_holdout_keeps_validation_groups_out_of_training():
    split = group_holdout(SPLIT, GROUPS, 0.2, seed=0)
    assert (split[~POOL] == "test").all()
    assert not set(GROUPS[split == "val"]) & set(GROUPS[split == "train"])
    assert 0.1 < np.mean(split[POOL] == "val") < 0.3


def test_a_seeded_split_with_groups_keeps_each_group_in_one_split():
    split = group_split(GROUPS, [0.7, 0.15, 0.15], seed=0)
    for name in ("train", "val", "test"):
        assert (split == name).any()
        assert not set(GROUPS[split == name]) & set(GROUPS[split != name])
    assert [len(set(GROUPS[split == s])) for s in ("train", "val", "test")] == [
        11,
        3,
        3,
    ]  # 17 groups: shares of groups (0.15 x 17 -> 3)
    assert (group_split(GROUPS, [0.7, 0.15, 0.15], seed=0) == split).all()
    few = np.array(["a", "b", "c", "a"])  # at least one group in val and in test, however small their shares
    assert sorted(group_split(few, [0.98, 0.01, 0.01], seed=1)[[0, 1, 2]]) == ["test", "train", "val"]
    with pytest.raises(ConfigError, match="2 groups cannot fill train, val and test"):
        group_split(np.array(["a", "b", "a"]), [0.7, 0.15, 0.15], seed=0)


def test_bad_fold_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="cv.folds=1 must be a whole number >= 2"):
        fold_split(SPLIT, LABELS, None, 1, 0, seed=0)
    with pytest.raises(ConfigError, match=r"cv.fold=5 must be in 0..4"):
        fold_split(SPLIT, LABELS, None, 5, 5, seed=0)
    with pytest.raises(ConfigError, match="needs at least 20 groups"):
        fold_split(SPLIT, LABELS, GROUPS, 20, 0, seed=0)


TEXT = [
    "data=manifest",
    "data.split_column=split",
    "++data.modalities.text.column=text",
    "++data.targets.label.column=label",
    "data.batch_size=8",
]


def test_val_split_group_and_cross_validation_end_to_end(tmp_path, toy_manifest):
    import pandas as pd

    frame = pd.read_csv(toy_manifest)
    frame["user"] = [f"u{i // 3 % 5}" for i in range(len(frame))]  # 5 users, each with rows of every class
    grouped = toy_manifest.with_name("grouped.csv")  # beside it: media paths are relative to its folder
    frame.to_csv(grouped, index=False)
    _, dm = prepare(
        make_cfg(
            tmp_path / "g", *TEXT, f"data.path={grouped}", "data.group_column=user", "data.val_split=group"
        )
    )
    users, split = frame["user"].to_numpy(), dm.table.split
    assert (split == "val").any() and not set(users[split == "val"]) & set(users[split == "train"])
    metrics = run(make_cfg(tmp_path / "cv", *TEXT, f"data.path={toy_manifest}", "cv.folds=2"))
    folds = [json.loads((tmp_path / "cv" / f"fold_{i}" / "metrics.json").read_text()) for i in range(2)]
    key = "test/label/f1_macro"
    assert metrics[key] == pytest.approx((folds[0][key] + folds[1][key]) / 2)
    assert metrics[f"fold_1/{key}"] == folds[1][key] and metrics[f"{key}/std"] >= 0
    assert json.loads((tmp_path / "cv" / "metrics.json").read_text())[key] == pytest.approx(metrics[key])
    with pytest.raises(ConfigError, match="cv.folds=5 needs data that can be re-split"):
        prepare(make_cfg(tmp_path / "n", "cv.folds=5"))
    with pytest.raises(ConfigError, match="data.val_split=speakers is not known: use null"):
        prepare(
            make_cfg(
                tmp_path / "v",
                *TEXT,
                f"data.path={grouped}",
                "data.group_column=user",
                "data.val_split=speakers",
            )
        )
    frame.loc[[2, 7], "user"] = None  # rows without a group would all become one group "nan"
    frame.to_csv(grouped, index=False)
    with pytest.raises(ConfigError, match=r"data.group_column=user: 2 rows have no group \(rows \[2, 7\]"):
        prepare(
            make_cfg(
                tmp_path / "e",
                *TEXT,
                f"data.path={grouped}",
                "data.group_column=user",
                "data.val_split=group",
            )
        )
