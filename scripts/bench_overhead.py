"""Training-step throughput: mmtrain's LightningModule under a Lightning Trainer vs a hand-written
PyTorch loop, on the same model (the default config's), the same batches and the same optimiser.

Rounds alternate between the two in one process; each round times ``--steps`` optimizer steps
(Lightning: from the first batch's start to the last batch's end, so the one-off cost of starting
``fit`` is left out). The last line is ``ratio <mmtrain steps/s ÷ hand-written steps/s>``. Usage:
    python scripts/bench_overhead.py --rounds 7 --steps 30
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch


def hand_written(model, batches, lr: float, clip: float, task: str) -> float:
    """A plain PyTorch loop: forward, cross-entropy, backward, clip, AdamW step. Returns steps/s."""
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01
    )
    start = time.perf_counter()
    for batch in batches:
        loss = torch.nn.functional.cross_entropy(model(batch).outputs[task], batch["targets"][task])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
    return len(batches) / (time.perf_counter() - start)


def with_lightning(module, batches, clip: float) -> float:
    import lightning as L

    class StepTimer(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            self.end = time.perf_counter()

    timer = StepTimer()
    trainer = L.Trainer(
        max_steps=len(batches),
        max_epochs=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        gradient_clip_val=clip,
        callbacks=[timer],
    )
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False)
    trainer.fit(module, train_dataloaders=loader)
    return len(batches) / (timer.end - timer.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--overrides", nargs="*", default=[], help="config overrides, e.g. fusion=late")
    args = parser.parse_args()

    import logging
    import warnings

    from hydra import compose, initialize_config_module

    from mmtrain.train import prepare

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[
                "paths.output_dir=/tmp/bench_overhead",
                "data.source.num_samples=3000",
                "optim.scheduler.name=none",
                *args.overrides,
            ],
        )
    module, datamodule = prepare(cfg)
    batches = list(datamodule.train_dataloader())[: args.steps]
    task = next(iter(cfg.head))
    lr, clip = cfg.optim.optimizer.lr, cfg.trainer.gradient_clip_val
    hand_model = copy.deepcopy(module.model)
    print(
        f"model: {sum(p.numel() for p in module.parameters() if p.requires_grad):,} trainable parameters; "
        f"{len(batches)} batches of {cfg.data.batch_size}; torch threads {torch.get_num_threads()}"
    )

    hand, light = [], []
    for r in range(args.rounds):
        order = (
            [("hand", hand), ("lightning", light)] if r % 2 == 0 else [("lightning", light), ("hand", hand)]
        )
        for name, results in order:
            if name == "hand":
                results.append(hand_written(hand_model, batches, lr, clip, task))
            else:
                results.append(with_lightning(module, batches, clip))
        print(f"round {r}: hand {hand[-1]:.2f} steps/s, mmtrain {light[-1]:.2f} steps/s")
    # The first round warms caches and allocators for both: leave it out when there are enough.
    keep = slice(1, None) if args.rounds > 2 else slice(None)
    hand_rate, light_rate = statistics.median(hand[keep]), statistics.median(light[keep])
    print(f"median: hand-written {hand_rate:.2f} steps/s, mmtrain {light_rate:.2f} steps/s")
    print(f"ratio {light_rate / hand_rate:.3f}")


if __name__ == "__main__":
    main()
