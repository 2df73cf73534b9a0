"""model=gbm: LightGBM trained on the trees' input of inference/gbm.py (the table as it is, frozen
embeddings of the other modalities), one booster per task (per label for multilabel), early-stopped on
val, with the loss's class weights, calibrated on val as a network is. Writes gbm/ (the boosters and
model.json), which ``load_model`` reads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from mmtrain.evaluation.calibration import fit_checked
from mmtrain.inference.gbm import MODEL, Features, model_names, outputs_of, values_of
from mmtrain.runtime import devices
from mmtrain.tasks import TASKS, labelled

log = logging.getLogger(__name__)
OBJECTIVES = {
    "multiclass": "multiclass",
    "binary": "binary",
    "multilabel": "binary",
    "regression": "regression",
}


def params_of(settings: dict, spec: dict, seed: int) -> dict:
    params = {
        "objective": OBJECTIVES[spec["type"]],
        "learning_rate": settings["learning_rate"],
        "num_leaves": settings["num_leaves"],
        "min_data_in_leaf": settings["min_data_in_leaf"],
        "feature_fraction": settings["feature_fraction"],
        "lambda_l2": settings["lambda_l2"],
        "cat_smooth": settings["cat_smooth"],
        "seed": seed,
        "deterministic": True,
        "num_threads": devices.cores(),
        "verbose": -1,
    }
    if spec["type"] == "multiclass":
        params["num_class"] = len(spec["classes"])
    return params


def fit_one(x, y, weights, params, val, settings, categorical):
    """One booster, early-stopped on the val rows (x_val, y_val)."""
    import lightgbm as lgb

    train_set = lgb.Dataset(x, y, weight=weights, categorical_feature=categorical, free_raw_data=False)
    val_set = lgb.Dataset(val[0], val[1], categorical_feature=categorical, reference=train_set)
    return lgb.train(
        params,
        train_set,
        num_boost_round=settings["max_rounds"],
        valid_sets=[val_set],
        callbacks=[lgb.early_stopping(settings["early_stopping"], verbose=False)],
    )


def sample_weights(spec: dict, y: np.ndarray) -> np.ndarray | None:
    """Each train row's weight from its class's weight (loss.class_weights); None without them."""
    weights = spec.get("weights")
    if not weights or spec["type"] not in ("multiclass", "binary"):
        return None
    return np.asarray(weights, dtype=np.float64)[y]


def train(
    settings: dict,
    table,
    modalities: list[str],
    tasks: dict,
    encoders: dict,
    decision: dict,
    seed: int,
    **store,
) -> dict:
    """Fit the trees of every task -> {"features", "boosters" {task: [booster]}, "calibration",
    "values" {split: {task: [N, K]}}, "rows" {split: rows}, "names", "groups"}."""
    train_rows = table.indices("train")
    features, computed = Features.fit(
        table, modalities, encoders, settings["embedding_dims"], train_rows, **store
    )
    x, names, categorical, groups = features.matrix(table, table.preprocessing, computed, **store)
    log.info("model=gbm: %d features (%d categorical) from %s", len(names), len(categorical), modalities)
    splits = list(dict.fromkeys(s for s in table.split if s != "train"))
    rows = {s: table.indices(s) for s in splits}
    fitted, calibration, values = {}, {}, {s: {} for s in splits}
    for task, spec in tasks.items():
        kind, y_all = TASKS.get(spec["type"]), table.targets[task]
        columns = [y_all[:, j] for j in range(y_all.shape[1])] if y_all.ndim == 2 else [y_all]
        fitted[task] = []
        known = np.asarray(kind.known(y_all))
        known = known.all(axis=1) if known.ndim == 2 else known
        for y in columns:
            tr, va = train_rows[known[train_rows]], rows["val"][known[rows["val"]]]
            weights = sample_weights(spec, y[tr].astype(np.int64)) if y.ndim == 1 else None
            booster = fit_one(
                x[tr], y[tr], weights, params_of(settings, spec, seed), (x[va], y[va]), settings, categorical
            )
            fitted[task].append(booster)
            log.info("model=gbm: %s: %d rounds (best on val)", task, booster.best_iteration)
        for split, split_rows in rows.items():
            raw = [b.predict(x[split_rows], num_iteration=b.best_iteration) for b in fitted[task]]
            values[split][task] = values_of(spec, raw)
        outputs = outputs_of(spec, values["val"][task])
        calibration[task] = fit_checked(
            kind, *labelled(spec["type"], outputs, torch.as_tensor(y_all[rows["val"]])), decision
        )
    return {
        "features": features,
        "boosters": fitted,
        "calibration": calibration,
        "values": values,
        "rows": rows,
        "names": names,
        "groups": groups,
    }


def save(folder: Path, result: dict, data_spec: dict, tasks: dict, preprocessing: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for task, spec in tasks.items():
        for name, booster in zip(model_names(task, spec), result["boosters"][task]):
            booster.save_model(str(folder / f"{name}.txt"), num_iteration=booster.best_iteration)
    saved = {
        "data_spec": data_spec,
        "tasks": {t: {"type": s["type"], "classes": s["classes"]} for t, s in tasks.items()},
        "features": result["features"].state(),
        "preprocessing": {m: p for m, p in preprocessing.items() if m in result["features"].modalities},
        "calibration": result["calibration"],
    }
    (folder / MODEL).write_text(json.dumps(saved, indent=2, default=float) + "\n")


def importance(result: dict, tasks: dict) -> list[dict]:
    """Gain per feature summed over the tasks' boosters, with each feature's modality."""
    gain = np.zeros(len(result["names"]))
    for task in tasks:
        for booster in result["boosters"][task]:
            gain += booster.feature_importance(importance_type="gain")
    total = gain.sum() or 1.0
    return [
        {"feature": n, "modality": g, "gain": float(v), "share": float(v / total)}
        for n, g, v in sorted(zip(result["names"], result["groups"], gain), key=lambda r: -r[2])
    ]


def leaves(result: dict) -> int:
    return int(
        sum(
            sum(tree["num_leaves"] for tree in b.dump_model()["tree_info"])
            for boosters in result["boosters"].values()
            for b in boosters
        )
    )
