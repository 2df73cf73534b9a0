"""The GPU checks (run by scripts/gpu_check.sh; a few minutes on one GPU), printed as one table:

1. the default run with trainer=gpu trainer.precision=bf16-mixed: wall time, test macro-F1, peak GPU memory;
2. a frozen-encoder run (frozen MiniLM features computed on the GPU, in bf16 autocast): the device the
   feature store encoded on, read from the run's log, and rows/s of that encoding;
3. the ONNX export of run 1 with its parity check (onnxruntime on the CPU vs the PyTorch model);
4. a 2-process DDP run: on two GPUs with NCCL when there are two, else on the CPU with gloo (one GPU
   cannot hold two NCCL ranks), with the two ranks' feature-store shares;
5. MFU of fine-tuning the text encoder (MiniLM, bf16 autocast, batch 64 x 64 tokens): achieved FLOP/s
   (6 x parameters x tokens per second; attention's own FLOPs left out, so an underestimate) / the
   GPU's bf16 dense peak (--peak-tflops, default 989: H100/H200 SXM).

Without CUDA it prints why and exits 0, unless --cpu (every check on the CPU, small: to check this
script itself on a machine without a GPU).
Usage:
    scripts/gpu_check.sh                       # or: python scripts/gpu_check.py [--out gpu_check] [--cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import torch


def console(name: str, *args: str, env: dict | None = None) -> tuple[float, str]:
    """A console script beside this interpreter -> (wall seconds, its output); exits on failure."""
    start = time.perf_counter()
    result = subprocess.run(
        [str(Path(sys.executable).with_name(name)), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "1", **(env or {})},
    )
    if result.returncode:
        sys.exit(f"{name} {' '.join(args)} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return time.perf_counter() - start, result.stdout + result.stderr


def mfu(device: torch.device, peak_tflops: float, steps: int) -> tuple[float, float]:
    """(tokens/s, MFU) of fine-tuning MiniLM in bf16 autocast on ``device``."""
    from mmtrain.encoders.text import HFTextEncoder

    encoder = HFTextEncoder(freeze=False).to(device)
    params = sum(p.numel() for p in encoder.parameters())
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-5)
    ids = torch.randint(1000, 20000, (64, 64), device=device)
    mask = torch.ones_like(ids, dtype=torch.bool)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = encoder(ids, mask).pooled.float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # warm-up: kernels chosen, memory allocated
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    tokens_per_s = steps * ids.numel() / (time.perf_counter() - start)
    return tokens_per_s, 6 * params * tokens_per_s / (peak_tflops * 1e12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check"))
    parser.add_argument("--cpu", action="store_true", help="run every check on the CPU (to test this script)")
    parser.add_argument("--peak-tflops", type=float, default=989.0)
    args = parser.parse_args()
    gpus = torch.cuda.device_count()
    if not gpus and not args.cpu:
        print(
            "gpu_check: skipped: no CUDA device (torch.cuda.is_available() is False). --cpu runs the same "
            "checks on the CPU to test the script."
        )
        return
    out = args.out.absolute()
    cache = f"cache_dir={out / 'cache'}"
    trainer = "trainer=cpu" if args.cpu else "trainer=gpu"
    small = ["data.source.num_samples=300", "trainer.max_epochs=1"] if args.cpu else []
    rows = [("device", "CPU (--cpu)" if args.cpu else torch.cuda.get_device_name(0)), ("GPUs", str(gpus))]

    run1 = out / "default_bf16"
    wall, _ = console(
        "mmtrain", f"hydra.run.dir={run1}", trainer, "trainer.precision=bf16-mixed", cache, *small
    )
    metrics, info = (
        json.loads((run1 / "metrics.json").read_text()),
        json.loads((run1 / "run.json").read_text()),
    )
    rows += [
        ("1. default run, bf16-mixed: wall", f"{wall:.1f} s (fit {info['wall_s']['train']:.1f} s)"),
        ("1. test macro-F1 (CPU fp32 default: 0.866)", f"{metrics['test/sentiment/f1_macro']:.3f}"),
        ("1. peak GPU memory", f"{info.get('peak_gpu_mb', 0):.0f} MB" if not args.cpu else "n/a (CPU)"),
    ]

    run2 = out / "frozen_minilm"
    _, log = console(
        "mmtrain",
        f"hydra.run.dir={run2}",
        trainer,
        "trainer.precision=bf16-mixed",
        "modalities=[text]",
        f"cache_dir={out / 'cache_frozen'}",
        *small,
    )
    where = re.findall(r"Encoding (text on [^:]+): \d+ rows in ([\d.]+) s \((\d+) rows/s\)", log)
    rows.append(
        (
            "2. frozen MiniLM encoded on",
            f"{where[0][0]}, {where[0][2]} rows/s" if where else "not found in the log",
        )
    )

    _, log = console("mmtrain-export", f"run={run1}", "format=onnx", f"hydra.run.dir={out / 'export'}")
    parity = re.findall(r"max \|diff\| = ([\d.e+-]+)", log)
    rows.append(
        (
            "3. ONNX parity (onnxruntime CPU vs torch)",
            f"max_abs_diff {parity[-1]}" if parity else "see export log",
        )
    )

    run4 = out / "ddp"
    ddp_trainer = ["trainer=ddp", "trainer.devices=2"] + (
        ["trainer.accelerator=gpu"] if gpus >= 2 and not args.cpu else ["trainer.accelerator=cpu"]
    )
    wall, log = console(
        "mmtrain",
        f"hydra.run.dir={run4}",
        *ddp_trainer,
        f"cache_dir={out / 'cache_ddp'}",
        "data.source.num_samples=300",
        "trainer.max_epochs=1",
    )
    rows.append(
        (
            "4. DDP, 2 processes",
            f"{'NCCL on 2 GPUs' if gpus >= 2 and not args.cpu else 'gloo on the CPU'}: "
            f"{wall:.1f} s, test macro-F1 "
            f"{json.loads((run4 / 'metrics.json').read_text())['test/sentiment/f1_macro']:.3f}",
        )
    )

    device = torch.device("cpu" if args.cpu else "cuda")
    tokens, ratio = mfu(device, args.peak_tflops, steps=3 if args.cpu else 50)
    rows.append(
        (
            "5. MiniLM fine-tuning, bf16: tokens/s, MFU",
            f"{tokens:,.0f}, {100 * ratio:.1f} % of {args.peak_tflops:.0f} TFLOP/s",
        )
    )

    table = "\n".join(["| check | result |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
