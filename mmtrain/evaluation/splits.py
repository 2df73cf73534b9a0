"""The metrics of a model on each split, through Lightning's validation and test loops (under DDP
each row is counted once)."""

from __future__ import annotations


def evaluate_splits(
    trainer, module, datamodule, ckpt_path: str | None, splits: list[str], val: bool = True
) -> tuple[dict, dict]:
    """Metrics (``<split>/<task>/<metric>``) and confusion matrices of each split, through
    Lightning's test loop (under DDP each row is counted once)."""
    trainer.loggers = []  # the final evaluation is metrics.json, not one more epoch in metrics.csv
    metrics, confusion = {}, {}
    if val:
        trainer.validate(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
    for split in splits:
        datamodule.test_split = module.test_split = split
        trainer.test(module, datamodule=datamodule, ckpt_path=ckpt_path, verbose=False)
        metrics.update(module.test_results)
        confusion[split] = module.test_confusion
    if val:
        metrics.update(module.val_results)
    return metrics, confusion
