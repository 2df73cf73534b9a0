"""mmtrain's own Lightning callbacks (the rest of conf/callbacks/ are Lightning's)."""

from __future__ import annotations

import logging
import time

from lightning.pytorch.callbacks import Callback, Timer

from mmtrain.optim import WarmupCosine

log = logging.getLogger(__name__)


class TimeBudget(Callback):
    """Makes ``trainer.max_time`` a budget the schedule is fitted to: after the first and again after
    the second epoch of a fit (the first also pays start-up costs), the epochs that still fit in the
    time left are counted from that epoch's wall time (train and validation), ``max_epochs`` is cut to them and the warm-up + cosine schedule is stretched over exactly
    those steps, so the learning rate still ends at 0 and the run ends at an epoch boundary, in time
    for the final evaluation. Lightning's own stop at max_time remains the hard limit."""

    def __init__(self, margin: float = 0.05):
        self.margin = margin  # share of the budget kept in hand (the epochs' times vary)
        self.start: float | None = None
        self.fits = 0
        self.configured: int | None = None  # the max_epochs the config asked for: never exceeded

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        if self.fits >= 2 or timer is None or timer.time_remaining("train") is None:
            return
        if self.fits == 0:
            self.configured = trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
        self.fits += 1
        epoch_time = time.perf_counter() - self.start
        budget = timer.time_elapsed("train") + timer.time_remaining("train")
        left = timer.time_remaining("train") - self.margin * budget
        epochs = trainer.current_epoch + 1 + max(0, int(left // epoch_time))
        epochs = min(epochs, self.configured) if self.configured is not None else epochs
        if epochs == trainer.max_epochs:
            return
        trainer.fit_loop.max_epochs = epochs
        steps = int(epochs * trainer.num_training_batches / trainer.accumulate_grad_batches)
        for config in trainer.lr_scheduler_configs:
            for schedule in getattr(config.scheduler, "lr_lambdas", []):
                if isinstance(schedule, WarmupCosine):
                    schedule.total = max(schedule.warmup + 1, steps)
        log.info("trainer.max_time: an epoch takes %.1f s, so %d epochs fit (trainer.max_epochs=%s); the "
                 "learning-rate schedule is fitted to their %d steps.", epoch_time, epochs, self.configured, steps)
