"""Validation by groups and k-fold cross-validation, as split assignments: each function takes the
per-row split ("train", "val", test splits) and returns a new one in which only the train and val
rows are reassigned; test splits stay apart, untouched. Seeded, so every job of a sweep (and every
rank) gets the same folds. Built on scikit-learn's splitters."""

from __future__ import annotations

import numpy as np

from mmtrain.core.errors import ConfigError


def group_split(groups: np.ndarray, fractions, seed: int) -> np.ndarray:
    """A seeded train / val / test split of whole groups when the data has no split column: the
    shares ``fractions`` are of the groups (at least one group each), so no group is in two splits."""
    names = np.unique(groups)
    if len(names) < 3:
        raise ConfigError(
            f"data.group_column: {len(names)} groups cannot fill train, val and test apart; give a "
            f"data.split_column, or data with at least 3 groups."
        )
    order = names[np.random.default_rng(seed).permutation(len(names))]
    _, val, test = list(fractions)
    n_test = int(np.clip(round(test * len(names)), 1, len(names) - 2))
    n_val = int(np.clip(round(val * len(names)), 1, len(names) - 1 - n_test))
    of_group = (
        dict.fromkeys(order[:n_test], "test")
        | dict.fromkeys(order[n_test : n_test + n_val], "val")
        | dict.fromkeys(order[n_test + n_val :], "train")
    )
    return np.array([of_group[g] for g in groups])


def group_holdout(split: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Whole groups (speakers, patients, users) of the train + val rows held out as val, about
    ``fraction`` of those groups (GroupShuffleSplit's share is of groups, not rows), so validation and
    early stopping see only groups training never saw."""
    from sklearn.model_selection import GroupShuffleSplit

    pool = np.flatnonzero(np.isin(split, ["train", "val"]))
    if len(set(groups[pool])) < 2:
        raise ConfigError(
            f"data.val_split=group needs at least 2 groups in data.group_column among the train and val "
            f"rows; found {len(set(groups[pool]))}."
        )
    train, val = next(
        GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(pool, groups=groups[pool])
    )
    out = split.copy()
    out[pool[train]], out[pool[val]] = "train", "val"
    return out


def fold_split(
    split: np.ndarray, labels: np.ndarray | None, groups: np.ndarray | None, folds: int, fold: int, seed: int
) -> np.ndarray:
    """Fold ``fold`` of ``folds`` over the train + val rows: that fold is val, the others train.
    Stratified by ``labels`` (class per row; None: not stratified) and, with ``groups``, no group in
    two folds (StratifiedGroupKFold / GroupKFold)."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if not (isinstance(folds, int) and folds >= 2):
        raise ConfigError(f"cv.folds={folds} must be a whole number >= 2 (e.g. cv.folds=5).")
    if not (isinstance(fold, int) and 0 <= fold < folds):
        raise ConfigError(f"cv.fold={fold} must be in 0..{folds - 1} (or null: every fold in turn).")
    pool = np.flatnonzero(np.isin(split, ["train", "val"]))
    if groups is not None and len(set(groups[pool])) < folds:
        raise ConfigError(
            f"cv.folds={folds} with data.group_column needs at least {folds} groups among the train and "
            f"val rows; found {len(set(groups[pool]))}: use fewer folds."
        )
    if labels is not None and groups is not None:
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    elif labels is not None:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    elif groups is not None:
        splitter = GroupKFold(folds)
    else:
        splitter = KFold(folds, shuffle=True, random_state=seed)
    parts = splitter.split(
        pool, None if labels is None else labels[pool], None if groups is None else groups[pool]
    )
    train, val = list(parts)[fold]
    out = split.copy()
    out[pool[train]], out[pool[val]] = "train", "val"
    return out
