"""The cost of the named backbones on this machine (issue "Pretrained backbones" targets):

- get:      `mmtrain-models get mpnet` into an empty model cache, pip's cache off (wall s; target <= 180)
- frozen:   frozen featurizing of short texts (tfns tweets), rows/s, fp32 and bf16 (mpnet target >= 100),
            minilm beside it
- finetune: one fine-tuning step (batch 64, precision=auto as the presets, forward + backward + AdamW),
            mpnet / minilm (target <= 6x)
- whisper:  frozen whisper_base features of avdigits' 3,000 clips, wall s (target <= 600)
- image:    efficientnet_lite0 at 224 px: frozen images/s, and one fine-tuning step of 32 images (s)

Usage:
    python scripts/bench_backbones.py [get frozen finetune whisper] [--texts ../shared/data/tfns/manifest.csv]
        [--avdigits ../shared/data/avdigits/manifest.csv] [--out bench/backbones]
Writes <out>/results.json and prints one line per figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def bench_get() -> dict:
    with tempfile.TemporaryDirectory() as home:
        start = time.perf_counter()
        subprocess.run(
            [
                str(Path(sys.executable).with_name("mmtrain-models")),
                "get",
                "mpnet",
                "pip_args=[--no-cache-dir]",
            ],
            check=True,
            env={**os.environ, "MMTRAIN_HOME": home},
        )
        return {"get mpnet s": round(time.perf_counter() - start, 1)}


def texts(path: Path, n: int) -> list[str]:
    import pandas as pd

    return pd.read_csv(path)["text"].astype(str).head(n).tolist()


def encoder(name: str, freeze: bool):
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from mmtrain.core.errors import build

    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        node = OmegaConf.to_container(compose("train", overrides=[f"encoder/text={name}"]).encoder.text)
    return build({**node, "freeze": freeze}, "encoder.text")


def bench_frozen(data: Path) -> dict:
    from mmtrain.data.feature_store import featurizers

    rows, out = texts(data, 1024), {}
    for name in ("mpnet", "minilm"):
        for precision in ("32-true", "bf16-mixed"):
            featurize = featurizers({"text": encoder(name, True)}, None, precision=precision)["text"]
            featurize(rows[:64])  # warm-up: the model load and first allocations
            start = time.perf_counter()
            featurize(rows)
            out[f"frozen {name} {precision} rows/s"] = round(len(rows) / (time.perf_counter() - start), 1)
        tokens = encoder(name, True).tokenizer(rows)["input_ids"]
        out[f"{name} mean tokens"] = round(sum(map(len, tokens)) / len(tokens), 1)
    return out


def bench_finetune(data: Path, steps: int = 5) -> dict:
    import torch

    from mmtrain.core.tensors import pad
    from mmtrain.runtime import devices

    precision = devices.precision({"accelerator": "cpu", "precision": "auto"})  # as the presets run
    rows, out = texts(data, 64), {"finetune precision": precision}
    for name in ("mpnet", "minilm"):
        model = encoder(name, False)
        x, mask = pad(model.featurize(rows))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        times = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            with devices.autocast(precision, "cpu"):
                loss = model(x, mask).pooled.float().pow(2).mean()
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - start)
        out[f"finetune {name} s/step"] = round(sorted(times[1:])[len(times[1:]) // 2], 2)
    out["finetune mpnet / minilm"] = round(out["finetune mpnet s/step"] / out["finetune minilm s/step"], 2)
    return out


def bench_whisper(manifest: Path) -> dict:
    import pandas as pd
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from mmtrain.core.errors import build
    from mmtrain.data.feature_store import featurizers

    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        node = OmegaConf.to_container(
            compose("train", overrides=["encoder/audio=whisper_base"]).encoder.audio
        )
    clips = [manifest.parent / p for p in pd.read_csv(manifest)["audio"]]
    featurize = featurizers({"audio": build(node, "encoder.audio")}, None)["audio"]
    start = time.perf_counter()
    features = featurize(clips)
    return {
        "whisper_base frozen clips": len(clips),
        "whisper_base frozen s": round(time.perf_counter() - start, 1),
        "whisper_base tokens per clip": round(sum(len(f) for f in features) / len(features), 1),
    }


def bench_image(steps: int = 3) -> dict:
    import torch
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from mmtrain.core.errors import build

    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        node = OmegaConf.to_container(compose("train").encoder.image)
    pixels = torch.randn(64, 1, 3, 224, 224)
    mask = torch.ones(64, 1, dtype=torch.bool)
    frozen = build(node, "encoder.image")
    start = time.perf_counter()
    with torch.inference_mode():
        frozen.features(pixels[:, 0])
    out = {"lite0 frozen images/s": round(64 / (time.perf_counter() - start), 1)}
    tuned = build({**node, "freeze": False}, "encoder.image").train()
    optimizer = torch.optim.AdamW([p for p in tuned.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        tuned(pixels[:32], mask[:32]).pooled.pow(2).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - start)
    out["lite0 finetune s/step of 32"] = round(sorted(times)[len(times) // 2], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", nargs="*", default=["get", "frozen", "finetune", "whisper", "image"])
    parser.add_argument("--texts", type=Path, default=SHARED / "tfns" / "manifest.csv")
    parser.add_argument("--avdigits", type=Path, default=SHARED / "avdigits" / "manifest.csv")
    parser.add_argument("--out", type=Path, default=Path("bench/backbones"))
    args = parser.parse_args()
    from mmtrain.cli import offline

    offline()
    results = {}
    for what in args.what:
        figures = {
            "get": bench_get,
            "frozen": lambda: bench_frozen(args.texts),
            "finetune": lambda: bench_finetune(args.texts),
            "whisper": lambda: bench_whisper(args.avdigits),
            "image": bench_image,
        }[what]()
        print(json.dumps(figures), flush=True)
        results.update(figures)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
