"""Experiment tracking for many runs: Lightning's MLflow logger, with mmtrain's defaults and the
run's whole record.

Loggers may have two hooks that ``train.run`` calls on the global-zero process: ``log_run_config(cfg)``
before training (the resolved config, flattened, as parameters) and ``log_run_outputs(out_dir,
metrics)`` at the end (the final val/test metrics, report.md, the PNGs, metrics.json and the best
checkpoint as artefacts). Per-epoch metrics arrive through Lightning as for any logger.
"""

from __future__ import annotations

import os
from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger as LightningMLFlowLogger
from omegaconf import DictConfig, OmegaConf

from mmtrain.core import artefacts

ARTEFACTS = (
    artefacts.REPORT,
    artefacts.METRICS,
    artefacts.CONFIG,
    artefacts.RUN_INFO,
    "*.png",
    "checkpoints/best.ckpt",
)


def sweep_or_run_dir(run_dir: str | Path) -> tuple[Path, str | None]:
    """(where a local store goes, the experiment name): under a Hydra multirun, the sweep dir and its
    name, so every job of the sweep is one experiment of one store; else the run dir and None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        sweep = Path(HydraConfig.get().sweep.dir).absolute()
        return sweep, sweep.name
    return Path(run_dir).absolute(), None


def job_overrides() -> str | None:
    from hydra.core.hydra_config import HydraConfig

    return (HydraConfig.get().job.override_dirname or None) if HydraConfig.initialized() else None


class MLFlowLogger(LightningMLFlowLogger):
    """``logger=mlflow``. tracking_uri null: MLflow's local file store in ``mlruns/`` under the sweep
    dir (under ``-m``) or the run dir; ``mlflow ui --backend-store-uri file:<that dir>/mlruns`` shows it.
    experiment_name null: the sweep dir's name, or ``mmtrain`` for a single run. run_name: the job's
    overrides (which configuration this run is)."""

    def __init__(
        self,
        run_dir: str,
        experiment_name: str | None = None,
        tracking_uri: str | None = None,
        run_name: str | None = None,
        **kwargs,
    ):
        store, sweep = sweep_or_run_dir(run_dir)
        if (
            not tracking_uri
        ):  # MLflow 3 keeps the file store behind this switch (maintenance mode, still read by mlflow ui)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        super().__init__(
            experiment_name=experiment_name or sweep or "mmtrain",
            run_name=run_name or job_overrides(),
            tracking_uri=tracking_uri or (store / "mlruns").as_uri(),
            **kwargs,
        )

    def log_run_config(self, cfg: DictConfig) -> None:
        # under config/: Lightning logs the module's hyperparameters too, and MLflow refuses a changed value
        self.log_hyperparams({"config": OmegaConf.to_container(cfg, resolve=True)})

    def log_run_outputs(self, out_dir: Path, metrics: dict[str, float]) -> None:
        self.log_metrics({k: float(v) for k, v in metrics.items()})
        for pattern in ARTEFACTS:
            for path in sorted(out_dir.glob(pattern)):
                folder = path.parent.relative_to(out_dir)
                self.experiment.log_artifact(
                    self.run_id, str(path), None if folder == Path(".") else str(folder)
                )
        self.experiment.set_terminated(self.run_id, "FINISHED")
