"""Where a run computes and in what precision, decided in one place for every step: featurizing,
training, testing, calibrating, averaging, analysing, predicting and evaluating. Counts devices the
way Lightning reads ``trainer.devices`` (an int count, a list of GPU ids, "0,1" ids, "2" a count,
-1 or auto: every visible GPU), and autocasts as Lightning's precision plugin does
(``MixedPrecision``: bf16 for the bf16 precisions, fp16 for 16-mixed on a GPU)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os

import torch

log = logging.getLogger("mmtrain")


def cores() -> int:
    """The CPU cores this process may use: what Slurm allotted the task (SLURM_CPUS_PER_TASK), else the
    CPUs it may run on (its affinity: a container's or cgroup's limit), not every core of the node."""
    allotted = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return int(allotted) if allotted.isdigit() and int(allotted) > 0 else len(os.sched_getaffinity(0))


def use_cores() -> int:
    """Torch's CPU threads at most ``cores()`` (torch's own default, one per physical core, is kept when
    it is fewer): on a shared node, a job that runs a thread per core of the node goes many times slower
    than its own cores allow (OpenMP's threads wait actively). Returns the threads used."""
    if cores() < torch.get_num_threads():
        torch.set_num_threads(cores())
    return torch.get_num_threads()


def on_gpu(trainer_cfg) -> bool:
    accelerator = str(trainer_cfg.get("accelerator", "auto"))
    return accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())


def gpu_ids(devices) -> list[int] | None:
    """The GPU ids ``trainer.devices`` names ([0, 1], "0,1", "1,"), or None when it counts devices."""
    if isinstance(devices, str) and "," in devices:
        return [int(d) for d in devices.split(",") if d.strip()]
    if not isinstance(devices, (str, int)) and hasattr(devices, "__len__"):
        return [int(d) for d in devices]
    return None


def device_count(trainer_cfg) -> int:
    """Processes per node: the devices ``trainer.devices`` asks for (1 on the CPU for auto)."""
    devices = trainer_cfg.get("devices", 1)
    ids = gpu_ids(devices)
    if ids is not None:
        return len(ids)
    if str(devices) in ("auto", "-1"):
        return max(1, torch.cuda.device_count()) if on_gpu(trainer_cfg) else 1
    return max(1, int(devices))


def world_size(trainer_cfg) -> int:
    """How many processes the trainer runs: devices x nodes."""
    return device_count(trainer_cfg) * int(trainer_cfg.get("num_nodes", 1) or 1)


def device(trainer_cfg) -> torch.device:
    """This process's device, known before the trainer starts: the GPU of this rank (LOCAL_RANK) when
    the trainer uses GPUs, else the CPU."""
    if not on_gpu(trainer_cfg):
        return torch.device("cpu")
    local = int(os.environ.get("LOCAL_RANK", 0))
    ids = gpu_ids(trainer_cfg.get("devices", 1))
    return torch.device("cuda", ids[local] if ids else local)


def named(name: str) -> torch.device:
    """``device=auto|cpu|cuda|cuda:1`` of predict and evaluate."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def place(module: torch.nn.Module, device) -> torch.nn.Module:
    """The module on ``device``, moved only when it is elsewhere: ``.to`` walks every submodule, which
    costs milliseconds on a transformer for each row a server predicts."""
    first = next(itertools.chain(module.parameters(), module.buffers()), None)
    if first is not None and first.device != torch.device(device):
        module.to(device)
    return module


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (a CUDA GPU that supports it; a CPU with AVX512-BF16
    or AMX). Elsewhere bf16 autocast is emulated: on an AVX2-only CPU a frozen MiniLM pass ran at 16
    rows/s in bf16 against 101 in fp32 (scripts/bench_backbones.py)."""
    if device.type == "cuda":  # Ampere and later (is_bf16_supported also counts emulation)
        return torch.cuda.get_device_capability(device)[0] >= 8
    return device.type == "cpu" and (
        torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    )


def precision(trainer_cfg) -> str:
    """``trainer.precision`` made concrete: ``auto`` (the fine-tuning presets) is bf16-mixed where the
    run's device computes bf16 natively, else 32-true. Said in the log either way, and a bf16 asked for
    explicitly on a device that emulates it is warned about."""
    value = str(trainer_cfg.get("precision", "32-true"))
    if value != "auto" and not value.startswith("bf16"):
        return value
    where = device(trainer_cfg)
    native = native_bf16(where)
    if value == "auto":
        value = "bf16-mixed" if native else "32-true"
        log.info("trainer.precision=auto: %s (bf16 in hardware on this %s: %s)", value, where.type, native)
    elif value.startswith("bf16") and not native:
        log.warning(
            "trainer.precision=%s on a %s without bf16 in hardware: emulated, several times slower than "
            "32-true here; trainer.precision=auto picks the faster one.",
            value,
            where.type,
        )
    return value


def autocast_dtype(precision, device: torch.device) -> torch.dtype | None:
    """The dtype a run in ``precision`` autocasts to on ``device`` (None: fp32), as Lightning's
    MixedPrecision plugin chooses it."""
    precision = str(precision)
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16") and torch.device(device).type == "cuda":
        return torch.float16
    return None


def autocast(precision, device):
    """The autocast context of ``precision`` on ``device`` (Lightning's own, from its precision plugin)."""
    device = torch.device(device)
    dtype = autocast_dtype(precision, device)
    if dtype is None:
        return contextlib.nullcontext()
    from lightning.pytorch.plugins.precision import MixedPrecision

    return MixedPrecision(
        "bf16-mixed" if dtype == torch.bfloat16 else "16-mixed", device.type
    ).forward_context()
