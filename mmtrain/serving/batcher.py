"""Dynamic batching: requests' rows wait in one queue; each worker thread takes the first waiting request
and then more until ``max_rows`` rows or ``timeout_ms`` have passed, whichever comes first, predicts
them in one call and hands each request back its own rows. It waits only while more requests are on
their way (``arriving``: being read and checked), so a lone client is not kept waiting for company that
cannot come. A request whose client gave up (timed out) is skipped if it is still waiting."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Job:
    frame: pd.DataFrame
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    cancelled: threading.Event = field(default_factory=threading.Event)


class Batcher:
    """predicts: one function per worker thread, predict(frame) -> DataFrame with one row per input row
    (raises for a bad batch); observe(rows) is told each batch's size."""

    def __init__(self, predicts: list, max_rows: int, timeout_ms: float, observe=None):
        self.max_rows, self.timeout = max_rows, timeout_ms / 1000.0
        self.observe = observe or (lambda rows: None)
        self.jobs: queue.Queue[Job] = queue.Queue()
        self.arriving = 0  # requests read and checked now: they may join a waiting batch
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self.work, args=(predict,), daemon=True, name=f"mmtrain-serve-{i}")
            for i, predict in enumerate(predicts)
        ]
        for thread in self.threads:
            thread.start()

    @contextmanager
    def arrival(self):
        """Around a request's reading and checking, up to its submit."""
        with self.lock:
            self.arriving += 1
        try:
            yield
        finally:
            with self.lock:
                self.arriving -= 1

    def submit(self, frame: pd.DataFrame) -> Job:
        """Queue the rows (inside ``arrival``, so that the request counts as on its way until queued)."""
        loop = asyncio.get_running_loop()
        job = Job(frame, loop, loop.create_future())
        self.jobs.put(job)
        return job

    async def answer(self, job: Job, timeout_s: float) -> pd.DataFrame:
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except asyncio.TimeoutError:
            job.cancelled.set()
            raise

    def take(self) -> list[Job]:
        """The next batch: the first waiting job, then more until max_rows rows or the timeout."""
        first = self.jobs.get()
        batch, rows = [first], len(first.frame)
        deadline = time.monotonic() + self.timeout
        while rows < self.max_rows:
            if not self.arriving and self.jobs.empty():
                break
            left = deadline - time.monotonic()
            try:
                job = self.jobs.get(timeout=left) if left > 0 else self.jobs.get_nowait()
            except queue.Empty:
                break
            batch.append(job)
            rows += len(job.frame)
        return [job for job in batch if not job.cancelled.is_set()]

    def work(self, predict) -> None:
        while True:
            batch = self.take()
            if not batch:
                continue
            try:
                self.observe(sum(len(job.frame) for job in batch))
                out = predict(pd.concat([job.frame for job in batch], ignore_index=True))
                start = 0
                for job in batch:
                    part = out.iloc[start : start + len(job.frame)].reset_index(drop=True)
                    start += len(job.frame)
                    self.settle(job, part)
            except Exception as err:  # noqa: BLE001  (one request's bad rows must not fail the others)
                if len(batch) == 1:
                    self.settle(batch[0], err)
                    continue
                for job in batch:  # each alone again (its client still waiting)
                    if job.cancelled.is_set():
                        continue
                    try:
                        self.settle(job, predict(job.frame))
                    except Exception as err:  # noqa: BLE001  (handed to that request's handler)
                        self.settle(job, err)

    @staticmethod
    def settle(job: Job, result) -> None:
        def done():
            if job.future.done():
                return
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

        job.loop.call_soon_threadsafe(done)
