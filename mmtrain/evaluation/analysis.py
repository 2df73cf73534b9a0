"""What a trained model does on a split, for the run report: per-class scores, reliability bins,
each modality's contribution (drop-one and exact Shapley values over the present mask) and the
robustness sweep (MultiBench's protocol: one modality corrupted or missing at a time).

Everything here is a plain loop of the model over featurized batches on one process; a modality is
masked exactly as a missing one is (through ``present``), so no retraining is needed.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from mmtrain.core import artefacts
from mmtrain.modalities import MODALITIES
from mmtrain.runtime.devices import autocast, place
from mmtrain.tasks import TASKS, labelled

NOISE_LEVELS = [round(0.1 * i, 1) for i in range(10)]  # 0 ... 0.9
MISSING_RATES = [round(0.1 * i, 1) for i in range(11)]  # 0 ... 1
ROWS_PER_BIN = 20  # reliability diagram: the fewest rows a confidence bin rests on (where the split has them)
MAX_SHAPLEY_MODALITIES = 5  # 2^M masked evaluations


def score(task: dict, outputs: torch.Tensor, targets: torch.Tensor, metric: str | None = None) -> float:
    """One metric (default: the task type's main metric) of outputs [N, K] against targets."""
    kind = TASKS.get(task["type"])
    collection = kind.metrics(
        task["classes"], sync_on_compute=False
    )  # one process (rank 0) has every row here
    collection.update(*kind.metric_inputs(*labelled(task["type"], outputs.float(), targets)))
    return float(collection.compute()[metric or kind.main_metric])


def _cat(parts: list[dict]) -> dict:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]} if parts else {}


@torch.inference_mode()
def run(model, loader, device="cpu", fuse=None, precision: str | None = None):
    """The model over every batch: (outputs {task: [N, K]}, targets {task: [N, ...]}, present [N, M]).
    fuse(outs, present) -> {key: {task: outputs}} replaces the plain forward to get several
    variants of each batch from one encoding. ``precision``: the trainer's (bf16-mixed autocasts)."""
    place(model.eval(), device)
    results, targets, present = [], [], []
    for batch in loader:
        batch = move_data_to_device(batch, device)
        with autocast(precision, device):
            outs = model.encode(batch["inputs"])
            results.append(
                fuse(outs, batch, model) if fuse else {None: model.fuse(outs, batch["present"]).outputs}
            )
        targets.append({t: v.cpu() for t, v in batch["targets"].items()})
        present.append(batch["present"].cpu())
    keys = results[0].keys() if results else []
    outputs = {key: _cat([{t: v.float().cpu() for t, v in r[key].items()} for r in results]) for key in keys}
    return outputs, _cat(targets), torch.cat(present) if present else None


def contributions(model, loader, tasks: dict, device="cpu", precision: str | None = None):
    """Per modality and task (its main metric): ``full`` (every modality), ``none`` (every modality
    masked), ``drop_one`` = full - (full without it), and the exact Shapley value
    φ_m = Σ_{S ⊆ M∖{m}} |S|!(M−|S|−1)!/M! (v(S ∪ {m}) − v(S)); the φ_m sum to full − none.
    Returns (rows, the outputs with every modality, the targets, the fusion's weight rows (see
    ``weight_rows``; empty when it has none)): one pass over the split."""
    modalities = model.modalities
    m_count = len(modalities)
    if m_count > MAX_SHAPLEY_MODALITIES:
        subsets = [tuple(True for _ in modalities)] + [
            tuple(j != i for j in range(m_count)) for i in range(m_count)
        ]
        subsets.append(tuple(False for _ in modalities))
    else:
        subsets = list(itertools.product([False, True], repeat=m_count))

    def fuse(outs, batch, model):
        variants = {
            s: model.fuse(outs, batch["present"] & torch.tensor(s, device=batch["present"].device)).outputs
            for s in subsets
        }
        weights = model.fusion.modality_weights(outs, batch["present"])
        return variants | ({"weights": weights} if weights is not None else {})

    outputs, targets, present = run(model, loader, device, fuse, precision)
    rows = []
    for task, spec in tasks.items():
        metric = TASKS.get(spec["type"]).main_metric
        value = {s: score(spec, outputs[s][task], targets[task]) for s in subsets}
        full, none = value[tuple(True for _ in modalities)], value[tuple(False for _ in modalities)]
        for i, m in enumerate(modalities):
            without = tuple(j != i for j in range(m_count))
            shapley = math.nan
            if m_count <= MAX_SHAPLEY_MODALITIES:
                shapley = 0.0
                for s in subsets:
                    if s[i]:
                        continue
                    size = sum(s)
                    weight = (
                        math.factorial(size) * math.factorial(m_count - size - 1) / math.factorial(m_count)
                    )
                    shapley += weight * (value[s[:i] + (True,) + s[i + 1 :]] - value[s])
            rows.append(
                {
                    "modality": m,
                    "metric": f"{task}/{metric}",
                    "full": full,
                    "none": none,
                    "drop_one": full - value[without],
                    "shapley": shapley,
                }
            )
    return (
        rows,
        outputs[tuple(True for _ in modalities)],
        targets,
        weight_rows(outputs.get("weights"), present),
    )


def weight_rows(weights: dict[str, torch.Tensor] | None, present: torch.Tensor) -> list[dict]:
    """Rows {name, mean, std, rows} of a fusion's per-sample weights {name: [N]}, over the rows that
    have every modality (so the weights compare; else the rows with any), or [] without weights."""
    if not weights or present is None:
        return []
    complete = present.all(1)
    chosen = complete if complete.any() else present.any(1)  # a row with none has weight 0 everywhere
    return [
        {
            "name": name,
            "mean": float(w[chosen].mean()),
            "std": float(w[chosen].std()) if chosen.sum() > 1 else 0.0,
            "rows": int(chosen.sum()),
            "over": "rows with every modality" if complete.any() else "rows with any modality",
        }
        for name, w in weights.items()
    ]


def robustness(
    model,
    loader,
    tasks: dict,
    modality_types: dict,
    preprocessing: dict,
    device="cpu",
    seed: int = 0,
    precision: str | None = None,
) -> list[dict]:
    """Rows {modality, kind (noise|missing), level, metric, value}: each modality in turn corrupted
    at NOISE_LEVELS (its type's ``corrupt``: Gaussian noise on audio/image/tabular/sequence values,
    token dropping for text) or missing in a share MISSING_RATES of the rows, the others clean.
    Corruption is seeded, so curves compare across runs."""
    modalities = model.modalities
    generator = torch.Generator().manual_seed(seed)

    def fuse(outs, batch, model):
        variants = {}
        for i, m in enumerate(modalities):
            for level in NOISE_LEVELS:
                x, mask = batch["inputs"][m]
                if level:
                    x, mask = MODALITIES.get(modality_types[m]).corrupt(
                        x, mask, level, generator, preprocessing.get(m)
                    )
                    corrupted = {**outs, m: model.encoders[m](x, mask)}
                else:
                    corrupted = outs
                variants[(m, "noise", level)] = model.fuse(corrupted, batch["present"]).outputs
            for rate in MISSING_RATES:
                keep = torch.rand(len(batch["present"]), generator=generator) >= rate
                present = batch["present"].clone()
                present[:, i] &= keep.to(present.device)
                variants[(m, "missing", rate)] = model.fuse(outs, present).outputs
        return variants

    outputs, targets, _ = run(model, loader, device, fuse, precision)
    rows = []
    for (m, kind, level), out in outputs.items():
        for task, spec in tasks.items():
            metric = TASKS.get(spec["type"]).main_metric
            rows.append(
                {
                    "modality": m,
                    "kind": kind,
                    "level": level,
                    "metric": f"{task}/{metric}",
                    "value": score(spec, out[task], targets[task]),
                }
            )
    return rows


def per_class(tasks: dict, outputs: dict, targets: dict, calibration: dict) -> list[dict]:
    rows = []
    for task, spec in tasks.items():
        for row in (
            TASKS.get(spec["type"]).per_class(
                *labelled(spec["type"], outputs[task], targets[task]), spec["classes"], calibration.get(task)
            )
            or []
        ):
            rows.append({"task": task, **row})
    return rows


def reliability(
    tasks: dict, outputs: dict, targets: dict, calibration: dict, max_bins: int = 15
) -> list[dict]:
    """Rows {task, variant (raw|calibrated), bin, lower, upper, count, confidence, accuracy}: the
    reliability diagram over equal-count confidence bins (so every point rests on enough rows: at
    most ``max_bins``, at least ROWS_PER_BIN rows each where the split has them)."""
    rows = []
    for task, spec in tasks.items():
        kind = TASKS.get(spec["type"])
        for variant, cal in (("raw", None), ("calibrated", calibration.get(task))):
            pairs = kind.confidences(*labelled(spec["type"], outputs[task], targets[task]), cal)
            if pairs is None or not len(pairs[0]):
                continue
            confidence, correct = pairs
            order = confidence.argsort()
            bins = max(1, min(max_bins, len(order) // ROWS_PER_BIN))
            for b, chosen in enumerate(order.tensor_split(bins)):
                c = confidence[chosen]
                rows.append(
                    {
                        "task": task,
                        "variant": variant,
                        "bin": b,
                        "lower": float(c.min()),
                        "upper": float(c.max()),
                        "count": len(chosen),
                        "confidence": float(c.mean()),
                        "accuracy": float(correct[chosen].mean()),
                    }
                )
    return rows


def analyse(
    out_dir: Path,
    module,
    datamodule,
    split: str,
    robustness: bool = False,
    device="cpu",
    precision: str | None = None,
) -> None:
    """The run report's tables for ``split``, as CSV and PNG in ``out_dir``: per_class, reliability,
    contribution, fusion_weights (for a fusion with modality weights) and (with ``robustness``) the
    robustness sweep."""
    from mmtrain.reporting import results

    model, tasks, calibration = module.model, module.tasks, module.calibration
    loader = datamodule.loader(split, shard=False)
    rows, outputs, targets, weights = contributions(model, loader, tasks, device, precision)
    results.write_rows(out_dir / f"{artefacts.CONTRIBUTION}.csv", rows)
    results.plot_contributions(rows, out_dir / f"{artefacts.CONTRIBUTION}.png")
    if weights:
        results.write_rows(out_dir / f"{artefacts.FUSION_WEIGHTS}.csv", weights)
        results.plot_fusion_weights(
            weights, out_dir / f"{artefacts.FUSION_WEIGHTS}.png", type(model.fusion).__name__
        )
    results.write_rows(out_dir / artefacts.PER_CLASS, per_class(tasks, outputs, targets, calibration))
    bins = reliability(tasks, outputs, targets, calibration)
    if bins:
        results.write_rows(out_dir / f"{artefacts.RELIABILITY}.csv", bins)
        results.plot_reliability(bins, out_dir / f"{artefacts.RELIABILITY}.png")
    if robustness:
        types = datamodule.table.modality_types
        pre = {m: e.get("preprocessing") for m, e in module.hparams.model_cfg["encoder"].items()}
        rows = robustness(model, loader, tasks, types, pre, device, precision=precision)
        results.write_rows(out_dir / f"{artefacts.ROBUSTNESS}.csv", rows)
        results.plot_robustness(rows, out_dir / f"{artefacts.ROBUSTNESS}.png")
