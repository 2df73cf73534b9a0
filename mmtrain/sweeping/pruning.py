"""A sweep job reports its monitored val metric to its Optuna trial after every validation, and stops
training when the study's pruner says so: the run then ends as usual (best checkpoint, metrics.json,
report) and pruned.json tells the driver to record the trial as PRUNED."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L

from mmtrain.core import artefacts

log = logging.getLogger(__name__)


class ReportToTrial(L.Callback):
    def __init__(self, storage: str, study: str, trial: int, monitor: str, pruner=None, out_dir: str = "."):
        import optuna
        from hydra.utils import instantiate

        from mmtrain.sweeping.study import storage_of

        loaded = optuna.load_study(
            study_name=study,
            storage=storage_of(storage),
            pruner=instantiate(pruner) if pruner else optuna.pruners.NopPruner(),  # null: never prune
        )
        trial_id = next(t._trial_id for t in loaded.get_trials(deepcopy=False) if t.number == trial)
        self.trial, self.monitor, self.out_dir = optuna.Trial(loaded, trial_id), monitor, Path(out_dir)
        (self.out_dir / artefacts.PRUNED).unlink(missing_ok=True)

    def on_validation_end(self, trainer: L.Trainer, pl_module) -> None:
        fitting = trainer.state.fn == "fit"  # not the final validation of the best checkpoint
        if trainer.sanity_checking or not fitting or self.monitor not in trainer.callback_metrics:
            return
        prune = False
        if trainer.is_global_zero:
            value = float(trainer.callback_metrics[self.monitor])
            self.trial.report(value, step=trainer.current_epoch)
            prune = self.trial.should_prune()
            if prune:
                log.info(
                    "Trial %d pruned after epoch %d (%s %.4f).",
                    self.trial.number,
                    trainer.current_epoch,
                    self.monitor,
                    value,
                )
                self.out_dir.mkdir(parents=True, exist_ok=True)
                (self.out_dir / artefacts.PRUNED).write_text(
                    json.dumps(
                        {"trial": self.trial.number, "epoch": trainer.current_epoch, self.monitor: value}
                    )
                    + "\n"
                )
        if trainer.strategy.broadcast(prune):
            trainer.should_stop = True
