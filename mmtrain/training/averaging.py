"""The model best.ckpt holds: the best checkpoint by ``monitor``, or the average of the top-k
checkpoints of the run (``average.method=uniform``), or a greedy soup (Wortsman et al. 2022:
the top-k sorted by their val score, each added to the average only if the soup's val score does
not drop; AutoGluon's MultiModalPredictor averages its top 3). Checkpoints of one run share their
initialisation, which is what makes their average a good model."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import torch

from mmtrain.core.errors import ConfigError
from mmtrain.training import checkpoints

log = logging.getLogger(__name__)
METHODS = ("none", "uniform", "greedy")


def check(top_k: int, method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"average.method={method} is not known: use {', '.join(METHODS)}.")
    if not (isinstance(top_k, int) and top_k >= 1):
        raise ConfigError(
            f"average.top_k={top_k} must be a whole number >= 1 (e.g. 3 with average.method=greedy)."
        )


def average_states(states: list[dict]) -> dict:
    """The mean of the floating-point tensors of state dicts with the same keys; other entries
    (BatchNorm's num_batches_tracked) from the first. Summed in float64, so k identical states
    average back to exactly themselves."""
    out = {}
    for key, first in states[0].items():
        if torch.is_floating_point(first):
            out[key] = torch.stack([s[key].double() for s in states]).mean(0).to(first.dtype)
        else:
            out[key] = first
    return out


def val_score(module, datamodule, monitor: str, device="cpu", precision: str | None = None) -> float:
    """``monitor`` (val/<task>/<metric> or val/loss) of the module's current weights on the val split,
    through the one inference loop (evaluation/analysis.run)."""
    from mmtrain.evaluation import analysis  # Lightning: only when scoring, not when checking settings

    loader = datamodule.loader("val", shard=False)
    if monitor == "val/loss":  # each batch's loss times its rows, summed over the batches below

        def batch_loss(outs, batch, model):
            loss = module._loss(model.fuse(outs, batch["present"]), batch["targets"])
            return {"loss": {"sum": loss.reshape(1) * len(batch["present"])}}

        outputs, targets, present = analysis.run(module.model, loader, device, batch_loss, precision)
        return float(outputs["loss"]["sum"].sum()) / max(len(present), 1)
    _, task, metric = monitor.split("/", 2)
    outputs, targets, _ = analysis.run(module.model, loader, device, precision=precision)
    return analysis.score(module.tasks[task], outputs[None][task], targets[task], metric)


def finalize(
    module,
    datamodule,
    candidates: list[str],
    best: Path,
    method: str,
    monitor: str,
    mode: str,
    device="cpu",
    precision: str | None = None,
) -> str:
    """Write ``best`` (checkpoints/best.ckpt) from ``candidates`` (the run's top-k checkpoint files,
    best first) by ``method``; returns its path. With one candidate (or method none) it is that file."""
    if not candidates:
        if best.is_file():  # an earlier finish of this run dir (a re-run after completion)
            return str(best)
        raise ConfigError(
            f"No checkpoint was written (monitor={monitor}): is callbacks=none set? Training "
            f"needs callbacks.model_checkpoint to give best.ckpt."
        )
    if method == "none" or len(candidates) == 1:
        shutil.copyfile(candidates[0], best)
        return str(best)
    loaded = [checkpoints.load(c) for c in candidates]
    better = (lambda a, b: a >= b) if mode == "max" else (lambda a, b: a <= b)

    def score(members: list[int]) -> float:
        module.load_state_dict(
            module.restore(
                {**loaded[0], "state_dict": average_states([loaded[i]["state_dict"] for i in members])}
            )
        )
        return val_score(module, datamodule, monitor, device, precision)

    if method == "uniform":
        members = list(range(len(loaded)))
        value = score(members)
    else:  # greedy soup
        members, value = [0], score([0])
        for i in range(1, len(loaded)):
            trial = score(members + [i])
            if better(trial, value):
                members, value = members + [i], trial
    single = score([0])
    log.info(
        "average.method=%s: %d of %d checkpoints averaged, val %s %.4f (best single %.4f)",
        method,
        len(members),
        len(loaded),
        monitor,
        value,
        single,
    )
    result = dict(loaded[0])
    result["state_dict"] = average_states([loaded[i]["state_dict"] for i in members])
    result["averaged"] = {
        "method": method,
        "members": [Path(candidates[i]).name for i in members],
        "val": value,
        "best_single_val": single,
    }
    checkpoints.save(result, best)
    return str(best)
