"""Short real training runs, in process: learning, outputs, resume, reproducibility."""

import json

import pandas as pd
import torch

from mmtrain.train import run

CLASSIFICATION_KEYS = {
    "acc",
    "f1_macro",
    "balanced_acc",
    "auroc",
    "recall/negative",
    "recall/neutral",
    "recall/positive",
    "ece",
    "ece_raw",
    "nll",
    "nll_raw",
}


def test_default_architecture_beats_chance_and_writes_every_output(tmp_path, cfg_factory):
    # The default's frozen MiniLM + audio CNN + intermediate fusion, on a small slice of the data.
    cfg = cfg_factory(
        "encoder/text=minilm", "encoder/audio=cnn", "data.source.num_samples=900", "trainer.max_epochs=6"
    )
    metrics = run(cfg)
    out = tmp_path / "run"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert set(metrics) == {
        f"{stage}/sentiment/{k}" for k in CLASSIFICATION_KEYS for stage in ("val", "test")
    }
    # chance macro-F1 is 1/3 at best (always "neutral" gives 0.25)
    assert metrics["test/sentiment/f1_macro"] > 0.5
    for name in (
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "metrics.csv",
        "curves.png",
        "config.yaml",
        "confusion_sentiment.csv",
        "confusion_sentiment.png",
        "report.md",
        "run.json",
        "contribution.csv",
        "contribution.png",
        "reliability.png",
        "per_class.csv",
    ):
        assert (out / name).is_file(), name
    # Checkpoints hold plain containers only: they load with torch's safe loader.
    ckpt = torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["modalities"] == ["text", "audio"]
    # The frozen MiniLM comes back from its package: its 90 MB of weights are not in the checkpoint.
    assert not any(k.startswith("model.encoders.text.") for k in ckpt["state_dict"])
    assert (out / "checkpoints" / "best.ckpt").stat().st_size < 20e6


def test_multitask_reports_every_task(cfg_factory):
    metrics = run(cfg_factory("experiment=news_audio_multitask", "fusion=late"))
    assert {
        "test/tags/f1_macro",
        "test/tags/f1_micro",
        "test/tags/ap",
        "test/move/mae",
        "test/move/rmse",
        "test/move/r2",
    } <= set(metrics)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())


def _final_weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_resume_continues_at_the_right_epoch_with_identical_weights(tmp_path, cfg_factory):
    common = ["~callbacks.early_stopping", "fusion=early", "data.source.num_samples=200"]
    run(cfg_factory(*common, "trainer.max_epochs=3", f"paths.output_dir={tmp_path}/full"))
    # The same 3-epoch run, interrupted after its second epoch.
    run(
        cfg_factory(
            *common,
            "trainer.max_epochs=3",
            "+callbacks.stop._target_=conftest.StopAfterEpoch",
            "+callbacks.stop.epoch=1",
            f"paths.output_dir={tmp_path}/part",
        )
    )
    part_last = tmp_path / "part" / "checkpoints" / "last.ckpt"
    assert torch.load(part_last, weights_only=True)["epoch"] == 1
    run(
        cfg_factory(
            *common, "trainer.max_epochs=3", f"ckpt_path={part_last}", f"paths.output_dir={tmp_path}/resumed"
        )
    )
    last = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2
    a, b = _final_weights(tmp_path / "full/checkpoints/last.ckpt"), last["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key

    # and the resumed epoch validated exactly as the uninterrupted one did
    def last_val(run_dir):
        rows = pd.read_csv(tmp_path / run_dir / "metrics.csv").groupby("epoch").first()
        return rows.loc[2, ["val/loss", "val/sentiment/f1_macro", "val/sentiment/auroc"]].tolist()

    assert last_val("resumed") == last_val("full")


def test_same_seed_same_metrics(tmp_path, cfg_factory):
    args = ["fusion=hybrid", "seed=3"]
    first = run(cfg_factory(*args, f"paths.output_dir={tmp_path}/a"))
    second = run(cfg_factory(*args, f"paths.output_dir={tmp_path}/b"))
    assert first == second
    other = run(cfg_factory("fusion=hybrid", "seed=4", f"paths.output_dir={tmp_path}/c"))
    assert other != first


def test_generated_data_is_reused_across_runs_in_new_containers():
    from mmtrain.data.news_audio import generate

    first = generate(num_samples=60)
    clip = next(i for i, c in enumerate(first.modalities["audio"]) if c is not None)
    text, label = first.modalities["text"][0], int(first.targets["sentiment"][0])
    first.modalities["text"][0], first.targets["sentiment"][0], first.split[0] = "changed", 9, "nowhere"
    again = generate(num_samples=60)
    assert again.modalities["audio"][clip] is first.modalities["audio"][clip]  # built once
    assert (again.modalities["text"][0], int(again.targets["sentiment"][0])) == (text, label)
    assert again.split[0] != "nowhere"
    assert generate(num_samples=60, seed=1).modalities["text"][:5] != again.modalities["text"][:5]


def test_evaluate_a_checkpoint_without_training(tmp_path, cfg_factory):
    trained = run(cfg_factory(f"paths.output_dir={tmp_path}/train"))
    ckpt = tmp_path / "train" / "checkpoints" / "best.ckpt"
    evaluated = run(cfg_factory("train=false", f"ckpt_path={ckpt}", f"paths.output_dir={tmp_path}/eval"))
    assert evaluated == trained
    assert not (tmp_path / "eval" / "checkpoints").exists()


def test_resuming_in_the_same_run_dir_keeps_one_history(tmp_path, cfg_factory):
    common = [
        "~callbacks.early_stopping",
        "fusion=early",
        "data.source.num_samples=200",
        "trainer.max_epochs=3",
        f"paths.output_dir={tmp_path}/run",
    ]
    run(cfg_factory(*common, "+callbacks.stop._target_=conftest.StopAfterEpoch", "+callbacks.stop.epoch=1"))
    run(cfg_factory(*common))  # auto_resume: continues from the run dir's last.ckpt
    run(cfg_factory(*common))  # a finished run started again: nothing to train, history kept
    epochs = pd.read_csv(tmp_path / "run" / "metrics.csv").dropna(subset=["val/loss"])["epoch"].tolist()
    assert epochs == [0, 1, 2]
