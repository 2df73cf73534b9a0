"""mmtrain's own Lightning callbacks (the rest of mmtrain/conf/callbacks/ are Lightning's)."""

from __future__ import annotations

import logging
import time

from lightning.pytorch.callbacks import Callback, Timer

from mmtrain.model.optim import WarmupCosine
from mmtrain.runtime.progress import on_terminal

log = logging.getLogger(__name__)


class TimeBudget(Callback):
    """Makes ``trainer.max_time`` a budget the schedule is fitted to: after the first and again after
    the second epoch of a fit (the first also pays start-up costs), the epochs that still fit in the
    time left are counted from that epoch's wall time (train and validation), ``max_epochs`` is cut
    to them and the warm-up + cosine schedule is stretched over exactly
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
        log.info(
            "trainer.max_time: an epoch takes %.1f s, so %d epochs fit (trainer.max_epochs=%s); the "
            "learning-rate schedule is fitted to their %d steps.",
            epoch_time,
            epochs,
            self.configured,
            steps,
        )


class LogProgress(Callback):
    """Training progress as log lines where no progress bar can be seen (Slurm, nohup, CI; on a
    terminal the bar shows it and this is silent): a line every ``every`` share of an epoch of at
    least ``min_batches`` batches, and one per epoch with the train loss, the monitored metric (and its
    best so far) and the time left, from the mean epoch time."""

    def __init__(
        self, every: float = 0.25, min_batches: int = 20, monitor: str | None = None, mode: str = "max"
    ):
        if not 0 < every <= 1:
            from mmtrain.core.errors import ConfigError

            raise ConfigError(f"callbacks.log_progress.every={every} must be a share of an epoch in (0, 1].")
        self.every, self.min_batches, self.monitor, self.mode = every, min_batches, monitor, mode
        self.enabled = not on_terminal()
        self.fit_start = self.epoch_start = 0.0
        self.losses: list[float] = []
        self.next_share = every
        self.best: float | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        self.fit_start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epoch_start, self.losses, self.next_share = time.perf_counter(), [], self.every

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.losses.append(float(loss))
        total = trainer.num_training_batches
        if not self.enabled or not isinstance(total, int) or total < self.min_batches:
            return
        share = (batch_idx + 1) / total
        if share + 1e-9 >= self.next_share and share < 1:
            while self.next_share <= share + 1e-9:
                self.next_share += self.every
            elapsed = time.perf_counter() - self.epoch_start
            log.info(
                "epoch %d/%s: %d%% (step %d), loss %.4f, epoch ends in %.0f s",
                trainer.current_epoch + 1,
                self._epochs(trainer),
                100 * share,
                trainer.global_step,
                sum(self.losses) / len(self.losses),
                elapsed / share - elapsed,
            )

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if not self.enabled or trainer.sanity_checking:
            return
        done = trainer.current_epoch + 1
        elapsed = time.perf_counter() - self.fit_start
        metrics = trainer.callback_metrics
        parts = [f"loss {sum(self.losses) / len(self.losses):.4f}"] if self.losses else []
        if self.monitor and self.monitor in metrics:
            value = float(metrics[self.monitor])
            if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
                self.best = value
            parts.append(f"{self.monitor} {value:.4f} (best {self.best:.4f})")
        epochs = trainer.max_epochs if trainer.max_epochs not in (None, -1) else None
        left = f", about {elapsed / done * (epochs - done):.0f} s left" if epochs and epochs > done else ""
        log.info(
            "epoch %d/%s done (step %d, %.0f s): %s%s",
            done,
            self._epochs(trainer),
            trainer.global_step,
            elapsed,
            ", ".join(parts),
            left,
        )

    @staticmethod
    def _epochs(trainer) -> str:
        return str(trainer.max_epochs) if trainer.max_epochs not in (None, -1) else "?"
