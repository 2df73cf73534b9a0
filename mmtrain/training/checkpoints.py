"""Checkpoints: the only place a checkpoint file is read or written. Checkpoints hold plain
containers and tensors, so they load with ``weights_only=True``; a file is opened once per run for
its metadata (``peek``, memory-mapped and cached by path, size and time) and fully only to load
weights."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError, summary
from mmtrain.core.files import atomic_write

log = logging.getLogger(__name__)


def load(path) -> dict:
    """The whole checkpoint, on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=True)


def peek(path) -> dict:
    """The checkpoint memory-mapped (its metadata without reading the weights), read once per version
    of the file."""
    stat = Path(path).stat()
    return _peek(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _peek(path: str, size: int, mtime: int) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def save(checkpoint: dict, path) -> None:
    """Written to a temporary file and renamed into place, so a reader never sees half of it."""
    atomic_write(Path(path), lambda tmp: torch.save(checkpoint, tmp))


def load_weights(module, path) -> dict:
    """The checkpoint's weights and calibration into ``module``; returns the checkpoint."""
    checkpoint = load(path)
    module.load_state_dict(module.restore(checkpoint))
    return checkpoint


def load_module(path):
    """The trained module from a checkpoint file alone (no config beside it), in eval mode, with
    its calibration; a checkpoint from an older mmtrain is a clear error."""
    from mmtrain.model.module import MultimodalModule, moved  # Lightning: imported when a model is loaded

    checkpoint = load(path)
    fmt = checkpoint.get("mmtrain", {}).get("format", 1)
    if fmt < artefacts.CHECKPOINT_FORMAT or not checkpoint.get("hyper_parameters", {}).get("data_spec"):
        raise ConfigError(
            f"{path} was written by an older mmtrain (checkpoint format "
            f"{fmt}; this one reads {artefacts.CHECKPOINT_FORMAT}): it lacks "
            "the column mapping that predicting and evaluating "
            "need. Evaluate it the old way (mmtrain train=false "
            f"ckpt_path={path} with the run's data settings), or retrain."
        )
    hp = checkpoint["hyper_parameters"]
    module = MultimodalModule(moved(hp["model_cfg"]), hp["modalities"], hp["tasks"], hp["data_spec"])
    module.load_state_dict(module.restore(checkpoint))
    module.precision = checkpoint.get("mmtrain", {}).get("precision", "32-true")
    return module.eval()


def resolve_run(run) -> Path:
    """``run=``: a run dir (its checkpoints/best.ckpt) or a checkpoint file -> the checkpoint's path."""
    if run in (None, "", "???"):
        raise ConfigError(
            "run is not set: give a run dir or a checkpoint, e.g. run=outputs/2026-12-01/10-00-00-000000."
        )
    path = Path(str(run)).expanduser()
    if path.is_dir():
        best = path / artefacts.CHECKPOINTS / artefacts.BEST
        if best.is_file():
            return best
        found = (
            sorted(p.name for p in (path / artefacts.CHECKPOINTS).glob("*.ckpt"))
            if (path / artefacts.CHECKPOINTS).is_dir()
            else []
        )
        raise ConfigError(
            f"run={run}: this run dir has no checkpoints/best.ckpt"
            f"{' (it has ' + ', '.join(found) + ': point run at one of them)' if found else ''}. "
            f"Is it a finished training run? Point run at a run dir that holds checkpoints/best.ckpt, "
            f"or at a .ckpt file."
        )
    if path.is_file():
        return path
    raise ConfigError(f"run={run}: no such run dir or checkpoint file.")


def resolve_ckpt_path(ckpt_path, out_dir: Path, auto_resume: bool) -> str | None:
    """The checkpoint to start from: ``ckpt_path`` as given (``last`` = this run dir's last.ckpt,
    and, as in Lightning, a fresh start with a warning when there is none yet: the first run of a
    Slurm script that always passes it), or, with auto_resume, this run dir's last.ckpt when one
    exists (a requeued or re-run job). The file is opened here so a truncated or corrupt one fails
    before any work, by name."""
    last = out_dir / artefacts.CHECKPOINTS / artefacts.LAST
    if ckpt_path in (None, ""):
        if not (auto_resume and last.is_file()):
            return None
        path = last
    elif str(ckpt_path) == "last":
        if not last.is_file():
            log.warning(
                "ckpt_path=last: %s has no checkpoints/last.ckpt yet; starting from scratch.", out_dir
            )
            return None
        path = last
    else:
        path = Path(str(ckpt_path)).expanduser().absolute()
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path={ckpt_path}: no such file ({path}). Point it at a checkpoint, e.g. "
            f"<run dir>/checkpoints/last.ckpt, or use ckpt_path=last with hydra.run.dir=<run dir>."
        )
    try:
        peek(path)
    except Exception as err:  # noqa: BLE001  (any unreadable file is the user's to replace)
        raise ConfigError(
            f"ckpt_path={ckpt_path}: {path} is not a readable "
            f"checkpoint ({summary(err)}). It may be truncated or "
            f"corrupt; checkpoints/ keeps best.ckpt beside last.ckpt: point ckpt_path at another one."
        ) from err
    return str(path)
