"""mmtrain: config-driven training of multimodal models."""

import os


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("mmtrain.keys"):
        # ${mmtrain.keys:${data.modalities}} -> the names declared there, as a list.
        OmegaConf.register_new_resolver("mmtrain.keys", lambda node: list(node))
        OmegaConf.register_new_resolver("mmtrain.run_id", run_id, use_cache=True)


def run_id() -> str:
    """A run dir name: the Slurm job id (and array index) under Slurm, so that every rank of a job
    and the job after a requeue share it; otherwise the date and time to the microsecond."""
    job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("SLURM_JOB_ID")
    if job:
        task = os.environ.get("SLURM_ARRAY_TASK_ID")
        return f"slurm-{job}_{task}" if task else f"slurm-{job}"
    from datetime import datetime

    return datetime.now().strftime("%Y-%m-%d/%H-%M-%S-%f")


def load_model(run):
    """The trained model of a run dir or checkpoint file: ``load_model(run).predict(frame)``
    (see mmtrain.inference). Imported on first use, so ``import mmtrain`` stays light."""
    from mmtrain.inference import load_model as load

    return load(run)


_register_resolvers()
