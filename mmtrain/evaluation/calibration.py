"""Post-hoc calibration, fitted on the validation split after training: each task type fits its own
(mmtrain/tasks/: a temperature, multilabel thresholds; the numerics are tasks/calibration.py), and
``fit_checked`` keeps a fitted part only where it helps on val rows it was not fitted on."""

from __future__ import annotations

import logging

import torch

from mmtrain.tasks import TASKS, labelled

log = logging.getLogger(__name__)

MIN_ROWS = 50  # val rows with a target below which a fitted calibration is not trusted (nor tested)


def fit_checked(kind, outputs: torch.Tensor, targets: torch.Tensor, settings: dict, seed: int = 0) -> dict:
    """``kind.fit_calibration`` on every val row, each fitted part kept only where it helps on rows it
    did not see: fitted on one random half of val and scored on the other, and again the other way
    round, the temperature must lower the NLL and the thresholds must raise the macro-F1 (against no
    calibration) both times.
    A part not kept is reset (temperature 1, thresholds 0.5) and ``note`` says why; with fewer than
    MIN_ROWS rows nothing is fitted."""
    fitted = kind.fit_calibration(outputs, targets, settings)
    parts = [p for p in ("temperature", "thresholds") if p in fitted]
    if not parts:
        return fitted
    n = len(targets)
    if n < MIN_ROWS:
        return {
            **_reset(fitted, parts),
            "note": f"not fitted: val has {n} rows with a target, too few to tell "
            f"whether calibration helps (at least {MIN_ROWS})",
        }
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    halves = (order[: n // 2], order[n // 2 :])
    gains = {p: [] for p in parts}
    for fit, held in (halves, halves[::-1]):
        part = kind.fit_calibration(outputs[fit], targets[fit], settings)
        x, y = outputs[held].float(), targets[held]
        gains["temperature"].append(
            float(kind.nll(x, y).mean() - kind.nll(x / part["temperature"], y).mean())
        )
        if "thresholds" in parts:
            scaled = {"temperature": part["temperature"]}
            gains["thresholds"].append(
                _macro_f1(kind, x, y, {**scaled, "thresholds": part["thresholds"]})
                - _macro_f1(kind, x, y, scaled)
            )
    dropped = [p for p in parts if min(gains[p]) <= 0]
    if not dropped:
        return fitted
    said = {
        "temperature": "the temperature did not lower the NLL",
        "thresholds": "the thresholds did not raise F1",
    }
    return {
        **_reset(fitted, dropped),
        "note": "; ".join(said[p] for p in dropped) + " on held-out halves of val: not used",
    }


def _reset(calibration: dict, parts: list[str]) -> dict:
    out = {k: v for k, v in calibration.items() if k not in parts}
    return {**out, "temperature": 1.0} if "temperature" in parts else out


def _macro_f1(kind, outputs: torch.Tensor, targets: torch.Tensor, calibration: dict) -> float:
    from torchmetrics.functional.classification import multilabel_f1_score

    decided = kind.decide(kind.probabilities(outputs, calibration), calibration)
    return float(multilabel_f1_score(decided, targets.long(), num_labels=targets.shape[1], average="macro"))


def calibrate(
    module, datamodule, ckpt_path: str, settings: dict, device="cpu", precision: str | None = None
) -> dict:
    """Fit each task's calibration (temperature, thresholds) on the val split with the weights of
    ``ckpt_path``, and write it into that checkpoint (atomically), which predict then uses."""
    from mmtrain.evaluation.analysis import run
    from mmtrain.training import checkpoints

    checkpoint = checkpoints.load_weights(module, ckpt_path)
    outputs, targets, _ = run(
        module.model, datamodule.loader("val", shard=False), device, precision=precision
    )
    module.calibration = {
        t: fit_checked(TASKS.get(s["type"]), *labelled(s["type"], outputs[None][t], targets[t]), settings)
        for t, s in module.tasks.items()
    }
    for task, calibration in module.calibration.items():
        if calibration.get("note"):
            log.warning("Calibration of %s: %s.", task, calibration["note"])
    checkpoint["calibration"] = module.calibration
    checkpoints.save(checkpoint, ckpt_path)
    log.info("Calibration fitted on val: %s", module.calibration)
    return module.calibration
