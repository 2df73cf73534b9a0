"""Export parity: for every fusion (early, late, intermediate, hybrid) and a multitask model, a short
training run with the default encoders (frozen MiniLM + audio CNN) on news_audio, then
`mmtrain-export` to ONNX and TorchScript, and onnxruntime's / TorchScript's outputs (raw and calibrated
probabilities) against PyTorch's on 100 test rows (ragged lengths, rows without audio).
The last line is `max_abs_diff <x>` over all of them.
Usage:
    python scripts/bench_export.py [--out bench/export] [--rows 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

CONFIGS = {
    "early": ["fusion=early"],
    "late": ["fusion=late"],
    "intermediate": ["fusion=intermediate"],
    "hybrid": ["fusion=hybrid"],
    "multitask": ["experiment=news_audio_multitask", "fusion=intermediate"],
}


def console(name: str, *args: str) -> None:
    script = Path(sys.executable).with_name(name)
    result = subprocess.run(
        [str(script), *args], capture_output=True, text=True, env={**os.environ, "HYDRA_FULL_ERROR": "1"}
    )
    if result.returncode:
        sys.exit(f"{name} {' '.join(args)} failed:\n{result.stderr[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/export"))
    parser.add_argument("--rows", type=int, default=100)
    args = parser.parse_args()
    out = args.out.absolute()
    import numpy as np

    from mmtrain.data.news_audio import generate
    from mmtrain.export import check
    from mmtrain.predict import load_model

    lines, worst = ["| config | format | max abs diff (100 test rows) |", "|---|---|---|"], 0.0
    for name, overrides in CONFIGS.items():
        run_dir = out / name
        if not (run_dir / "checkpoints" / "best.ckpt").is_file():
            console("mmtrain", *overrides, "trainer.max_epochs=2", f"hydra.run.dir={run_dir}")
        model = load_model(run_dir)
        table = generate()  # the run's own data: its first test rows
        chosen = set(table.indices("test")[: args.rows].tolist())
        table.split = np.array(["test" if i in chosen else "other" for i in range(len(table))])
        datamodule = model.datamodule(table, batch_size=args.rows, test_split="test")
        batch = next(iter(datamodule.loader("test", shard=False)))
        inputs = tuple(t for m in model.modalities for t in batch["inputs"][m]) + (batch["present"],)
        for fmt in ("onnx", "torchscript"):
            folder = run_dir / f"export_{fmt}"
            console(
                "mmtrain-export",
                f"run={run_dir}",
                f"format={fmt}",
                f"output={folder}",
                "overwrite=true",
                f"hydra.run.dir={run_dir / 'export_run'}",
            )
            diff = check(model.module, folder, inputs)
            worst = max(worst, diff)
            lines.append(f"| {name} | {fmt} | {diff:.2e} |")
            print(lines[-1], flush=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"max_abs_diff {worst:.3e}")


if __name__ == "__main__":
    main()
