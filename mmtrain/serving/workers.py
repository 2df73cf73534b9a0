"""``serve.workers`` inference processes, each with its own copy of the model on the server's device.

A process (not a thread) per worker: torch computes fastest from a process's main thread (its OpenMP
threads stay warm there; from a second thread a 1-row prediction took ~30 % longer), a crash or a
leak stays in the worker, and a worker stuck past ``serve.timeout_s`` can be stopped and started
again. The HTTP process checks requests and batches rows; a worker only predicts: rows in, the
model's ``predict`` columns out, through a pipe. Workers are spawned (not forked: the parent's
OpenMP and CUDA state do not survive a fork) and share the machine's cores between them."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading

import pandas as pd

from mmtrain.core.errors import ConfigError, summary
from mmtrain.runtime import devices

log = logging.getLogger(__name__)


def serve_rows(run: str, device: str, threads: int, conn) -> None:
    """A worker process: load the model, then predict each frame it is sent until it is sent None."""
    import torch

    from mmtrain.data.preflight import BadRows
    from mmtrain.inference import load_model

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the server stops us
    torch.set_num_threads(threads)
    model = load_model(run)
    model.keep_resident()
    conn.send(("ready", None))
    while (message := conn.recv()) is not None:
        frame, checked = message
        try:
            # checked: the server preflighted these rows already, so they are not decoded twice
            bad = BadRows(len(frame)) if checked else None
            conn.send(("rows", model.predict(frame, "/", "error", max(len(frame), 1), None, device, bad)))
        except ConfigError as err:  # the rows' own data, as the model's checks say it: the client's 400
            conn.send(("bad", str(err)))
        except Exception as err:  # noqa: BLE001  (logged here, said to the server as one line)
            log.exception("mmtrain-serve worker: prediction failed")
            conn.send(("error", summary(err)))


class WorkerDied(RuntimeError):
    """A worker process ended or was stopped in the middle of a batch; a fresh one has replaced it."""


class Worker:
    """One inference process; ``predict(frame, checked)`` -> its rows, from any thread (one at a time)."""

    def __init__(self, run, device, threads: int, timeout_s: float):
        self.args = (str(run), str(device), threads)
        self.timeout_s = timeout_s
        self.lock = threading.Lock()
        self.start()

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(
            target=serve_rows, args=(*self.args, child), daemon=True, name="mmtrain-serve-worker"
        )
        self.process.start()
        child.close()
        self.ready = False

    def receive(self, timeout: float | None):
        if not self.conn.poll(timeout):
            raise TimeoutError
        return self.conn.recv()

    def wait_ready(self) -> None:
        """Block until the model is loaded (the first call after a start)."""
        if self.ready:
            return
        try:
            self.ready = self.conn.recv()[0] == "ready"
        except (EOFError, OSError) as err:  # a server fault (500), not the client's rows (400)
            raise RuntimeError(
                f"mmtrain-serve: the worker process could not load the model {self.args[0]} "
                f"(exit code {self.process.exitcode}); its log above says why."
            ) from err

    def predict(self, frame: pd.DataFrame, checked: bool = True) -> pd.DataFrame:
        with self.lock:
            self.wait_ready()
            try:
                self.conn.send((frame, checked))
                kind, value = self.receive(self.timeout_s)
            except (EOFError, OSError, TimeoutError) as err:
                if isinstance(err, TimeoutError):
                    why = f"ran past serve.timeout_s={self.timeout_s} s and was stopped"
                else:
                    self.process.join(timeout=5)  # its exit code
                    why = f"ended (exit code {self.process.exitcode})"
                log.error("mmtrain-serve: a worker process %s; starting a fresh one.", why)
                self.restart()
                raise WorkerDied(f"The worker process {why}.") from err
        if kind == "rows":
            return value
        raise (ConfigError if kind == "bad" else RuntimeError)(value)

    def restart(self) -> None:
        self.process.kill()
        self.process.join()
        self.conn.close()
        self.start()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


def start_workers(run, device, count: int, timeout_s: float) -> list[Worker]:
    """``count`` workers sharing the machine's cores (each at least one torch thread)."""
    threads = max(1, devices.cores() // count)
    return [Worker(run, device, threads, timeout_s) for _ in range(count)]
