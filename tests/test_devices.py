"""One device and precision helper (runtime/devices.py): devices counted as Lightning reads
trainer.devices, and the training precision kept in the checkpoint for predict and evaluate."""

from __future__ import annotations

import os

import pytest
import torch

from mmtrain.runtime import devices


@pytest.mark.parametrize(
    "trainer, processes",
    [
        ({"devices": 1}, 1),
        ({"devices": 2}, 2),
        ({"devices": "2"}, 2),
        ({"devices": "0,1"}, 2),
        ({"devices": "1,"}, 1),
        ({"devices": [0, 1, 3]}, 3),
        ({"devices": "auto", "accelerator": "cpu"}, 1),
        ({"devices": -1, "accelerator": "cpu"}, 1),
        ({"devices": 2, "num_nodes": 3}, 6),
    ],
)
def test_processes_are_counted_as_lightning_reads_devices(trainer, processes):
    assert devices.world_size(trainer) == processes


def test_autocast_follows_the_precision():
    assert devices.autocast_dtype("bf16-mixed", torch.device("cpu")) == torch.bfloat16
    assert devices.autocast_dtype("16-mixed", torch.device("cpu")) is None  # fp16 autocast needs a GPU
    assert devices.autocast_dtype("32-true", torch.device("cpu")) is None
    with devices.autocast("bf16-mixed", "cpu"):
        assert (torch.ones(4, 4) @ torch.ones(4, 4)).dtype == torch.bfloat16


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_the_hardware_computes_it(monkeypatch, caplog, native):
    monkeypatch.setattr(devices, "native_bf16", lambda device: native)
    trainer = {"accelerator": "cpu", "precision": "auto"}
    assert devices.precision(trainer) == ("bf16-mixed" if native else "32-true")
    assert devices.precision({**trainer, "precision": "32-true"}) == "32-true"
    caplog.clear()
    assert devices.precision({**trainer, "precision": "bf16-mixed"}) == "bf16-mixed"  # as asked, but said
    assert ("emulated" in caplog.text) is not native


def test_predict_runs_in_the_precision_the_model_was_trained_in(cfg_factory, tmp_path):
    import numpy as np
    import pandas as pd

    from mmtrain import load_model
    from mmtrain.data.news_audio import write_manifest
    from mmtrain.train import run
    from mmtrain.training import checkpoints

    cfg = cfg_factory("trainer.precision=bf16-mixed", "data.source.num_samples=120")
    run(cfg)
    assert (
        checkpoints.peek(f"{cfg.paths.output_dir}/checkpoints/best.ckpt")["mmtrain"]["precision"]
        == "bf16-mixed"
    )
    model = load_model(cfg.paths.output_dir)
    assert model.precision == "bf16-mixed"
    manifest = write_manifest(tmp_path / "data", num_samples=30)
    predictions = model.predict(
        pd.read_csv(manifest).drop(columns=["sentiment", "tags", "move"]), root=manifest.parent
    )
    assert len(predictions) == 30 and np.isfinite(predictions.filter(like="prob_").to_numpy()).all()


def test_a_slurm_task_uses_the_cores_it_was_given(monkeypatch):
    """Not every core of the node: torch's threads and the DataLoader workers follow
    SLURM_CPUS_PER_TASK (else the process's CPU affinity)."""
    from mmtrain.data.datamodule import worker_count

    threads = torch.get_num_threads()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    try:
        assert devices.cores() == 3 and worker_count("auto", ["audio"]) == 2
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
        assert devices.use_cores() == 1 and torch.get_num_threads() == 1
        assert worker_count("auto", ["audio"]) == 1 and worker_count("auto", []) == 0
        monkeypatch.delenv("SLURM_CPUS_PER_TASK")
        assert devices.cores() == len(os.sched_getaffinity(0))
    finally:
        torch.set_num_threads(threads)
