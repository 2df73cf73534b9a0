"""Predict targets, measured as a user would run them:
1. throughput of `mmtrain-predict` on a 3,000-row text+audio manifest (news_audio written out as
   text + wav files) with the default model, against the module's own test loop on the same rows
   (Lightning's trainer.test over the same featurizers); both featurize, both with a warm cache;
2. peak RSS of `mmtrain-predict` on a 30,000-row manifest (the 3,000 rows ten times) vs the 3,000-row one;
3. the report: its share of the training run's wall time, and the test ECE before/after temperature scaling.
Usage:
    python scripts/bench_predict.py [--out bench/predict] [--rows 3000] [--repeat 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd


def console(name: str, *args: str) -> float:
    """Runs a console script next to this interpreter under /usr/bin/time; returns peak RSS in MB."""
    script = Path(sys.executable).with_name(name)
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", str(script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HYDRA_FULL_ERROR": "1"},
    )
    if result.returncode:
        sys.exit(f"{name} {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/predict"))
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    out = args.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    from mmtrain.data.news_audio import write_manifest

    manifest = out / "data" / "manifest.csv"
    if not manifest.is_file():
        write_manifest(out / "data", num_samples=args.rows, seed=1)  # other rows than the training data's
    run_dir = out / "run"
    if not (run_dir / "checkpoints" / "best.ckpt").is_file():
        console("mmtrain", f"hydra.run.dir={run_dir}")  # the default model, trained on news_audio
    info = json.loads((run_dir / "run.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    unlabelled = out / "data" / "new.csv"
    frame = pd.read_csv(manifest).drop(columns=["sentiment", "tags", "move"])
    frame.to_csv(unlabelled, index=False)
    long = out / "data" / "long.csv"
    pd.concat([frame] * args.repeat, ignore_index=True).to_csv(long, index=False)

    from hydra import compose, initialize_config_module

    from mmtrain.inference import load_model
    from mmtrain.predict import predict

    def cfg(path, output):
        with initialize_config_module("mmtrain.conf", version_base="1.3"):
            return compose(
                "predict",
                overrides=[
                    f"run={run_dir}",
                    f"data.path={path}",
                    f"output={output}",
                    "overwrite=true",
                    f"paths.output_dir={out / 'p'}",
                ],
            )

    predict(cfg(unlabelled, out / "warm.csv"))  # warms the feature store, as the test loop's run below has
    times = {"predict": [], "test loop": []}
    import lightning as L

    model = load_model(run_dir)
    for _ in range(3):
        start = time.perf_counter()
        predict(cfg(unlabelled, out / "preds.csv"))
        times["predict"].append(time.perf_counter() - start)
        start = time.perf_counter()
        table, _ = model.table(
            pd.read_csv(manifest), manifest.parent, targets=True, split=["test"] * args.rows
        )
        datamodule = model.datamodule(table, test_split="test")
        trainer = L.Trainer(
            logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu", devices=1
        )
        trainer.test(model.module, datamodule=datamodule, verbose=False)
        times["test loop"].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    rss = {
        n: console(
            "mmtrain-predict",
            f"run={run_dir}",
            f"data.path={path}",
            f"output={out / 'rss.csv'}",
            "overwrite=true",
            f"hydra.run.dir={out / 'p'}",
        )
        for n, path in ((args.rows, unlabelled), (args.rows * args.repeat, long))
    }
    rows = [
        ("predict rows/s (best of 3, warm cache)", f"{args.rows / best['predict']:.0f}"),
        ("test loop rows/s (same rows, featurize + trainer.test)", f"{args.rows / best['test loop']:.0f}"),
        ("throughput ratio predict / test loop", f"{best['test loop'] / best['predict']:.2f}"),
        (f"peak RSS predicting {args.rows} rows", f"{rss[args.rows]:.0f} MB"),
        (f"peak RSS predicting {args.rows * args.repeat} rows", f"{rss[args.rows * args.repeat]:.0f} MB"),
        ("RSS ratio", f"{rss[args.rows * args.repeat] / rss[args.rows]:.2f}"),
        (
            "report.md of the default run (analysis incl. Shapley over 2 modalities)",
            f"{info['wall_s']['report']:.2f} s",
        ),
        (
            "default run test ECE raw -> calibrated",
            f"{metrics['test/sentiment/ece_raw']:.4f} -> {metrics['test/sentiment/ece']:.4f}",
        ),
        (
            "default run test NLL raw -> calibrated",
            f"{metrics['test/sentiment/nll_raw']:.4f} -> {metrics['test/sentiment/nll']:.4f}",
        ),
    ]
    table = "\n".join(["| measure | value |", "|---|---|"] + [f"| {a} | {b} |" for a, b in rows])
    (out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
