"""Progress of long work (featurizing, predicting): a tqdm bar on a terminal; elsewhere (logs, Slurm
output, hydra/job_logging=disabled) one log line per 10 % done, or per minute when the total is
not known."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("mmtrain")


def on_terminal() -> bool:
    """Whether a person watches stderr (a bar redraws in place there; elsewhere it is log lines)."""
    return sys.stderr.isatty()


class Progress:
    def __init__(self, desc: str, total: int | None = None, unit: str = "rows"):
        self.desc, self.total, self.unit, self.done = desc, total, unit, 0
        self.start = self.last = time.perf_counter()
        self.next_share = 0.1
        self.bar = None
        if on_terminal():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=f" {unit}", dynamic_ncols=True, leave=False)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.total and self.done / self.total >= self.next_share - 1e-9:
            while self.next_share <= self.done / self.total + 1e-9:
                self.next_share += 0.1
            self._log(now)
        elif not self.total and now - self.last >= 60:
            self._log(now)

    def _log(self, now: float) -> None:
        self.last = now
        rate = self.done / max(now - self.start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        eta = f", ETA {(self.total - self.done) / rate:.0f} s" if self.total and rate else ""
        log.info("%s: %d%s %s (%.0f %s/s%s)", self.desc, self.done, of, self.unit, rate, self.unit, eta)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elapsed = time.perf_counter() - self.start
        log.info(
            "%s: %d %s in %.1f s (%.0f %s/s)",
            self.desc,
            self.done,
            self.unit,
            elapsed,
            self.done / max(elapsed, 1e-9),
            self.unit,
        )
