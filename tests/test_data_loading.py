"""Media read from files are decoded per batch (in DataLoader workers), not held per row; workers
give the same batches as the training process alone."""

from __future__ import annotations

import numpy as np
import torch
from conftest import make_cfg

from mmtrain.train import prepare

MEDIA = [
    "data=manifest",
    "data.split_column=split",
    "++data.modalities.text.column=text",
    "++data.modalities.audio.column=audio",
    "++data.modalities.image.column=image",
    "++data.targets.label.column=label",
    "data.batch_size=8",
]


def batches(datamodule, epoch: int = 0) -> list[dict]:
    loader = datamodule.train_dataloader()
    loader.sampler.set_epoch(epoch)  # what Lightning does each epoch
    return list(loader)


def same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return torch.equal(a, b)


def test_media_from_files_are_decoded_per_batch_and_workers_give_the_same_batches(tmp_path, toy_manifest):
    module, alone = prepare(
        make_cfg(tmp_path / "a", *MEDIA, f"data.path={toy_manifest}", "data.num_workers=0")
    )
    assert alone.per_batch == ["audio", "image"] and alone.num_workers == 0
    assert set(alone.features) == {"text"}  # no decoded clip or image is kept per row
    _, workers = prepare(make_cfg(tmp_path / "b", *MEDIA, f"data.path={toy_manifest}", "data.num_workers=2"))
    for epoch in (0, 1):
        first, again = batches(alone, epoch), batches(workers, epoch)
        assert len(first) == len(again) and all(same(x, y) for x, y in zip(first, again))
    # per batch = what featurizing every row up front gives
    rows = alone.table.indices("train")[:8]
    batch = alone.batch(rows)
    encoder = module.model.encoders["image"]
    upfront = encoder.featurize([alone.table.modalities["image"][i] for i in rows])
    x, mask = batch["inputs"]["image"]
    assert all(torch.equal(x[j, : len(f)], f) for j, f in enumerate(upfront))


def test_num_workers_auto_uses_workers_only_for_per_batch_decoding(tmp_path, toy_manifest):
    _, media = prepare(make_cfg(tmp_path / "a", *MEDIA, f"data.path={toy_manifest}"))
    _, text = prepare(
        make_cfg(
            tmp_path / "b",
            "data=manifest",
            f"data.path={toy_manifest}",
            "data.split_column=split",
            "++data.modalities.text.column=text",
            "++data.targets.label.column=label",
        )
    )
    assert media.num_workers >= 1 and text.num_workers == 0 and text.per_batch == []


def test_resume_with_workers_decoding_per_batch_is_bitwise_identical(tmp_path, toy_manifest):
    from mmtrain.train import run

    common = [
        *MEDIA,
        f"data.path={toy_manifest}",
        "data.num_workers=2",
        "~callbacks.early_stopping",
        "trainer.max_epochs=2",
    ]
    run(make_cfg(tmp_path / "full", *common))
    run(
        make_cfg(
            tmp_path / "part",
            *common,
            "+callbacks.stop._target_=conftest.StopAfterEpoch",
            "+callbacks.stop.epoch=0",
        )
    )
    run(make_cfg(tmp_path / "resumed", *common, f"ckpt_path={tmp_path}/part/checkpoints/last.ckpt"))
    full, resumed = (
        torch.load(tmp_path / d / "checkpoints" / "last.ckpt", weights_only=True) for d in ("full", "resumed")
    )
    assert resumed["epoch"] == full["epoch"] == 1
    assert all(torch.equal(full["state_dict"][k], resumed["state_dict"][k]) for k in full["state_dict"])


def test_a_train_epoch_never_ends_on_a_batch_of_one_row(cfg_factory):
    """Batch norm cannot train on one value: a last batch of one row (and no frames: a row without
    its clip) would stop the run. It is left out of that epoch, for random and length-bucketed batches."""
    from mmtrain.data.datamodule import EpochSampler, LengthBuckets

    _, datamodule = prepare(cfg_factory("data.batch_size=16", "data.source.num_samples=240"))
    rows = len(datamodule.table.indices("train"))
    datamodule.batch_size = rows - 1  # rows = (rows - 1) + 1
    sizes = [len(b["present"]) for b in datamodule.train_dataloader()]
    assert sizes == [rows - 1]
    buckets = LengthBuckets(EpochSampler(33, seed=0), np.arange(33), batch_size=8, seed=0)
    assert len(buckets) == 4 and sorted(len(b) for b in buckets) == [8, 8, 8, 8]
