"""Registers hydra/sweeper=mmtrain_optuna; Hydra finds the Sweeper subclass in this module."""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore

from mmtrain.sweeping.study import StudySweeper


@dataclass
class MmtrainOptunaConf:
    _target_: str = "hydra_plugins.mmtrain_sweeper.mmtrain_optuna.MmtrainOptunaSweeper"
    storage: Any = None  # postgresql://..., sqlite:////abs/path.db, journal:/abs/path.log; null: in memory
    study_name: Any = None
    direction: str = "maximize"
    n_trials: int = 20  # this driver's trials
    n_jobs: int = 1
    max_failure_rate: float = 0.5
    sampler: Any = None
    pruner: Any = None
    params: Any = None


class MmtrainOptunaSweeper(StudySweeper):
    pass


ConfigStore.instance().store(
    group="hydra/sweeper", name="mmtrain_optuna", node=MmtrainOptunaConf, provider="mmtrain"
)
