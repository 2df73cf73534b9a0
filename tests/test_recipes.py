"""Fine-tuning recipes: presets, checkpoint averaging and soups, time budgets, bf16 on CPU,
length-bucketed batches, monitor=auto. (Layer-wise lrs: test_manifest_runs; losses: test_losses.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_cfg

from mmtrain.data.datamodule import EpochSampler, LengthBuckets
from mmtrain.runtime import devices
from mmtrain.train import prepare, run
from mmtrain.training.averaging import average_states


def test_averaging_identical_checkpoints_gives_the_same_weights():
    state = {"w": torch.randn(4, 3), "b": torch.randn(3), "bn.num_batches_tracked": torch.tensor(7)}
    averaged = average_states([state, {k: v.clone() for k, v in state.items()}, state])
    assert all(torch.equal(averaged[k], state[k]) for k in state)
    two = average_states([{"w": torch.zeros(2)}, {"w": torch.ones(2) * 4}])
    assert torch.equal(two["w"], torch.full((2,), 2.0))


def test_greedy_soup_is_never_worse_on_val_than_the_best_checkpoint(tmp_path):
    cfg = make_cfg(
        tmp_path / "run",
        "trainer.max_epochs=4",
        "~callbacks.early_stopping",
        "average.top_k=3",
        "average.method=greedy",
    )
    run(cfg)
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", weights_only=True)
    averaged = best["averaged"]
    assert 1 <= len(averaged["members"]) <= 3 and averaged["members"][0].startswith("epoch")
    assert averaged["val"] >= averaged["best_single_val"]
    assert len(list((tmp_path / "run" / "checkpoints" / "top").glob("*.ckpt"))) == 3


def test_max_time_stops_early_fits_the_schedule_and_still_evaluates(tmp_path):
    cfg = make_cfg(
        tmp_path / "run",
        "trainer.max_epochs=200",
        "trainer.max_time=00:00:00:08",
        "~callbacks.early_stopping",
    )
    metrics = run(cfg)
    assert "test/sentiment/f1_macro" in metrics and (tmp_path / "run" / "report.md").is_file()
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    steps_per_epoch = last["global_step"] // (last["epoch"] + 1)
    assert last["epoch"] + 1 < 200
    total = last["lr_schedulers"][0]["lr_lambdas"][0]["total"]
    assert total < 200 * steps_per_epoch  # the cosine was fitted to the epochs that fit, not to 200


def test_bf16_mixed_trains_on_cpu(tmp_path):
    metrics = run(make_cfg(tmp_path / "run", "trainer.precision=bf16-mixed", "trainer.max_epochs=2"))
    assert all(np.isfinite(v) for v in metrics.values())
    assert metrics["test/sentiment/acc"] > 0.4


def test_length_buckets_cover_each_row_once_in_similar_lengths_and_replay_per_epoch():
    lengths = np.random.default_rng(0).integers(1, 60, 500)
    buckets = LengthBuckets(EpochSampler(500, seed=3), lengths, batch_size=16, seed=3, pool=5)
    first = list(buckets)
    assert sorted(i for b in first for i in b) == list(range(500)) and len(first) == len(buckets)
    spread = np.mean([np.ptp(lengths[b]) for b in first])
    random_spread = np.mean([np.ptp(lengths[i : i + 16]) for i in range(0, 500, 16)])
    assert spread < random_spread / 3
    assert first == list(buckets)  # the same epoch, the same batches (resume)
    buckets.set_epoch(1)
    assert list(buckets) != first


def test_fine_tuned_text_trains_in_length_buckets_and_monitor_auto_picks_macro_f1(tmp_path, toy_manifest):
    cfg = make_cfg(
        tmp_path / "run",
        "data=manifest",
        f"data.path={toy_manifest}",
        "data.split_column=split",
        "++data.modalities.text.column=text",
        "++data.targets.label.column=label",
        "monitor=auto",
        "encoder/text=minilm",
        "finetune=[text]",
    )
    module, datamodule = prepare(cfg)
    assert cfg.monitor == "val/label/f1_macro" and cfg.monitor_mode == "max"
    assert module.model.encoders["text"].freeze is False and datamodule.settings.bucket_by == "text"


@pytest.mark.parametrize("preset, frozen", [("fast", True), ("balanced", False), ("best", False)])
def test_presets_freeze_or_fine_tune_the_pretrained_encoders(tmp_path, toy_manifest, preset, frozen):
    cfg = make_cfg(
        tmp_path / "run",
        "data=manifest",
        f"data.path={toy_manifest}",
        "data.split_column=split",
        "++data.modalities.text.column=text",
        "++data.targets.label.column=label",
        "encoder/text=minilm",
        f"preset={preset}",
    )
    module, _ = prepare(cfg)
    assert module.model.encoders["text"].freeze is frozen
    assert cfg.monitor == "val/label/f1_macro"
    if not frozen:
        native = devices.native_bf16(torch.device("cpu"))  # precision=auto, made concrete by prepare
        assert cfg.trainer.precision == ("bf16-mixed" if native else "32-true")
        assert cfg.average.method == "greedy"


def test_the_val_loss_a_soup_is_judged_by_comes_from_the_one_inference_loop(cfg_factory):
    """val_score(monitor=val/loss): the row-weighted mean of the batches' losses, as Lightning logs it."""
    from mmtrain.training.averaging import val_score

    module, datamodule = prepare(cfg_factory("data.source.num_samples=120", "data.batch_size=16"))
    module.eval()
    total, rows = 0.0, 0
    with torch.no_grad():
        for batch in datamodule.loader("val", shard=False):
            total += float(module._loss(module.model(batch), batch["targets"])) * len(batch["present"])
            rows += len(batch["present"])
    assert abs(val_score(module, datamodule, "val/loss") - total / rows) < 1e-5
