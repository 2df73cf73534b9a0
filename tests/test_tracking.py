"""logger=mlflow: a local file store under the run dir with the config, per-epoch metrics and the
run's files."""

from mmtrain.train import run


def test_mlflow_records_config_epochs_and_artefacts(tmp_path, cfg_factory):
    from mlflow.tracking import MlflowClient

    cfg = cfg_factory("logger=mlflow", "trainer.max_epochs=2", "data.source.num_samples=160")
    metrics = run(cfg)
    client = MlflowClient((tmp_path / "run" / "mlruns").as_uri())
    (experiment,) = [e for e in client.search_experiments() if e.name == "mmtrain"]
    (record,) = client.search_runs([experiment.experiment_id])
    assert record.info.status == "FINISHED"
    assert (
        record.data.params["config/fusion/_target_"] == cfg.fusion._target_
    )  # the resolved config, flattened
    assert record.data.params["config/trainer/max_epochs"] == "2"
    history = client.get_metric_history(record.info.run_id, "val/sentiment/f1_macro")
    assert len(history) >= 2  # each epoch's, then the final one
    assert record.data.metrics["test/sentiment/f1_macro"] == metrics["test/sentiment/f1_macro"]
    logged = {f.path for f in client.list_artifacts(record.info.run_id)}
    assert {"report.md", "metrics.json", "curves.png", "checkpoints"} <= logged
    assert [f.path for f in client.list_artifacts(record.info.run_id, "checkpoints")] == [
        "checkpoints/best.ckpt"
    ]
