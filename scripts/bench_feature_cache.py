"""Frozen MiniLM on a 3000-row text manifest (news_audio's headlines and sentiment written to a CSV,
read with data=manifest): the cost of an epoch when the frozen encoder runs every epoch vs a second
run reading its features from the warm disk cache.

Prints: encode time (paid every epoch by a pipeline that runs the frozen encoder each epoch), the
cold (encode + write) and warm (read) preparation times, one training epoch on the features, and the
per-epoch ratio (encode + epoch) / epoch. The head on top is the --fusion's (early: an MLP on the
pooled sentence embedding, the usual frozen-encoder setup; intermediate: attention over the tokens).
Usage:
    python scripts/bench_feature_cache.py --fusion early
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fusion", default="early")
    args = parser.parse_args()

    import pandas as pd
    import torch
    from hydra import compose, initialize_config_module

    from mmtrain.data.news_audio import CLASSES, generate
    from mmtrain.train import prepare

    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="mmtrain-cache-"))
    news = generate(num_samples=3000)
    pd.DataFrame({"text": news.modalities["text"], "sentiment": [CLASSES[y] for y in news.targets["sentiment"]],
                  "split": news.split}).to_csv(work / "headlines.csv", index=False)
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        cfg = compose("train", overrides=[
            "data=manifest", f"data.path={work / 'headlines.csv'}", "data.split_column=split",
            "++data.modalities.text.column=text", "++data.targets.sentiment.column=sentiment",
            f"fusion={args.fusion}", f"cache_dir={work / 'cache'}", f"paths.output_dir={work / 'run'}"])

    start = time.perf_counter()
    module, datamodule = prepare(cfg)  # cold: encodes all 3000 rows and writes the cache
    cold = time.perf_counter() - start
    encoder = module.model.encoders["text"]
    texts = datamodule.table.modalities["text"]
    start = time.perf_counter()
    encoder.featurize(texts)
    encode = time.perf_counter() - start

    start = time.perf_counter()
    module, datamodule = prepare(cfg)  # warm: reads the cache
    warm = time.perf_counter() - start

    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-3)
    module.train()
    start = time.perf_counter()
    for batch in datamodule.train_dataloader():
        loss = module._loss(module.model(batch), batch["targets"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    epoch = time.perf_counter() - start

    print(f"encode 3000 headlines with frozen MiniLM: {encode:.2f} s (paid every epoch without a cache)")
    print(f"prepare (data + model + features): cold {cold:.2f} s (encode + write), warm {warm:.2f} s (read)")
    print(f"one training epoch on the features ({args.fusion} fusion): {epoch:.3f} s")
    print(f"per epoch: encoding every epoch {encode + epoch:.2f} s, warm cache {epoch:.3f} s: "
          f"ratio {(encode + epoch) / epoch:.1f}x")


if __name__ == "__main__":
    main()
