"""The Lightning datamodule: serves padded batches. Cheap featurizing (tokenizing, tabular
preprocessing) runs once up front, in memory; a frozen encoder's features are computed once into the
on-disk feature store and read per batch; media read from files (image and audio paths) whose
encoder trains are decoded per batch, in the DataLoader workers. So memory does not grow with the
number of rows beyond the table and the cheap features."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from mmtrain.core.errors import ConfigError
from mmtrain.core.tensors import pad
from mmtrain.data.table import MultimodalTable
from mmtrain.runtime import devices

log = logging.getLogger(__name__)
SAMPLERS = ("random", "balanced")


class EpochSampler(Sampler[int]):
    """Shuffles train rows with a generator seeded by (seed, epoch), so a resumed run sees the same
    order as an uninterrupted one. With ``weights`` it draws rows with replacement in proportion to
    them (the balanced sampler). Under DDP each of ``world`` ranks takes every world-th position of
    one shared order (wrapped round so all ranks do the same number of steps). Lightning calls
    ``set_epoch`` each epoch."""

    def __init__(
        self, num_rows: int, seed: int, weights: np.ndarray | None = None, rank: int = 0, world: int = 1
    ):
        self.num_rows, self.seed, self.epoch, self.rank, self.world = num_rows, seed, 0, rank, world
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.num_rows // self.world)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is None:
            order = torch.randperm(self.num_rows, generator=g)
        else:
            order = torch.multinomial(self.weights, self.num_rows, True, generator=g)
        order = order.repeat(2)[: len(self) * self.world] if self.world > 1 else order
        return iter(order[self.rank :: self.world].tolist())


class LengthBuckets(Sampler[list[int]]):
    """Batches of rows of similar length (less padding for a fine-tuned transformer): the epoch's
    order from ``sampler`` is cut into pools of ``pool`` batches, each pool sorted by length and cut
    into batches, and the batches shuffled; all seeded by (seed, epoch), so resume sees the same
    batches. ``set_epoch`` reaches the row sampler too."""

    def __init__(
        self, sampler: EpochSampler, lengths: np.ndarray, batch_size: int, seed: int, pool: int = 50
    ):
        self.sampler, self.lengths, self.batch_size, self.seed, self.pool = (
            sampler,
            lengths,
            batch_size,
            seed,
            pool,
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        rows = len(self.sampler)
        return -(-rows // self.batch_size) - (rows % self.batch_size == 1 and rows > self.batch_size)

    def __iter__(self):
        order = list(self.sampler)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start : start + size], key=lambda i: self.lengths[i])
            batches += [chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        if len(batches) > 1:  # the last pool's batch of one row (see __len__): batch norm cannot train on it
            batches = [b for b in batches if len(b) > 1]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.sampler.epoch + 7)
        return iter([batches[i] for i in torch.randperm(len(batches), generator=g).tolist()])


def worker_count(num_workers, per_batch: list[str]) -> int:
    """data.num_workers: a number, or auto = one per spare core (at most 4) when some modality is
    decoded per batch, else 0 (features in memory: workers would only add start-up time)."""
    if num_workers == "auto":
        return min(4, max(1, devices.cores() - 1)) if per_batch else 0
    if not (isinstance(num_workers, int) and num_workers >= 0):
        raise ConfigError(
            f"data.num_workers={num_workers} must be auto or a whole number >= 0 (0: load in the "
            f"training process)."
        )
    return num_workers


class FeatureColumn(Sequence):
    """A modality's features by table row: the featurized rows (a list in memory, or the feature
    store's ``StoredFeatures``) at their positions, a [0, ...] tensor for rows without the modality."""

    def __init__(self, values: Sequence[torch.Tensor], present: np.ndarray, empty: torch.Tensor):
        self.values, self.empty = values, empty
        self.position = np.full(len(present), -1, dtype=np.int64)
        self.position[present] = np.arange(int(present.sum()))

    def __len__(self) -> int:
        return len(self.position)

    def __getitem__(self, row: int) -> torch.Tensor:
        at = self.position[row]
        return self.empty if at < 0 else self.values[at]

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        known = (
            self.values.lengths()
            if hasattr(self.values, "lengths")
            else np.array([len(v) for v in self.values])
        )
        at = self.position[rows]
        if not len(known):  # no row has this modality
            return np.zeros(len(rows), dtype=np.int64)
        return np.where(at < 0, 0, known[np.maximum(at, 0)])


@dataclass(frozen=True)
class LoaderSettings:
    """How train batches are drawn: the ``data`` keys of that name (and the run's seed), checked when
    it is made. bucket_by: train batches of similar length in this modality (see LengthBuckets)."""

    batch_size: int = 64
    num_workers: Any = "auto"
    sampler: str = "random"
    balance_task: str | None = None
    seed: int = 0
    bucket_by: str | None = None

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"data.sampler={self.sampler} is not known: use one of {', '.join(SAMPLERS)}.")
        if self.batch_size < 1:
            raise ConfigError(f"data.batch_size={self.batch_size} must be at least 1.")


class MultimodalDataModule(L.LightningDataModule):
    """Serves batches {"inputs": {m: (x, mask)}, "present": bool [B, M], "targets": {task: y}}.

    featurizers: modality -> the encoder's ``featurize`` (list of raw values -> list of per-sample
    tensors, or the feature store's ``StoredFeatures``). It runs once over every row that has the
    modality and the results are reused, except for the ``per_batch`` modalities, featurized from
    their raw values (file paths) in each batch. empty: modality -> the per-sample input of a row
    without it (the encoder's ``empty_input``, [0, ...]).
    """

    def __init__(
        self,
        table: MultimodalTable,
        modalities: list[str],
        tasks: list[str],
        featurizers: dict[str, Callable],
        empty: dict[str, torch.Tensor],
        loader: LoaderSettings = LoaderSettings(),
        test_split: str = "test",
        per_batch: list[str] = (),
    ):
        super().__init__()
        self.table, self.modalities, self.tasks = table, modalities, tasks
        self.featurizers, self.settings, self.batch_size = featurizers, loader, loader.batch_size
        self.per_batch = [m for m in modalities if m in per_batch]
        self.num_workers = worker_count(loader.num_workers, self.per_batch)
        self.empty, self.seed = empty, loader.seed
        self.test_split = test_split  # which split test_dataloader serves (one trainer.test per test split)
        self.features: dict[str, FeatureColumn] | None = None
        self.start_epoch = 0  # the epoch a resumed fit starts at (train.fit sets it)
        self.present = torch.tensor(
            np.stack([[v is not None for v in table.modalities[m]] for m in modalities], axis=1)
        )

    def setup(self, stage: str | None = None) -> None:
        if self.features is None:
            self.features = {m: self._featurize(m) for m in self.modalities if m not in self.per_batch}
            for m in self.per_batch:  # one row now: a decoding problem shows before training
                first = next((v for v in self.table.modalities[m] if v is not None), None)
                if first is not None:
                    self.featurizers[m]([first])
                log.info("%s: decoded per batch (%d DataLoader workers)", m, self.num_workers)

    def _featurize(self, modality: str) -> FeatureColumn:
        raws = self.table.modalities[modality]
        present = np.array([v is not None for v in raws])
        start = time.perf_counter()
        log.info("Featurizing %s: %d rows ...", modality, int(present.sum()))
        done = self.featurizers[modality]([v for v in raws if v is not None]) if present.any() else []
        log.info("Featurized %s in %.1f s", modality, time.perf_counter() - start)
        return FeatureColumn(done, present, self.empty[modality])

    def _rows(self, modality: str, rows: np.ndarray) -> list[torch.Tensor]:
        if modality not in self.per_batch:
            return [self.features[modality][i] for i in rows]
        raws = self.table.modalities[modality]
        present = [i for i in rows if raws[i] is not None]
        done = dict(zip(present, self.featurizers[modality]([raws[i] for i in present]))) if present else {}
        return [done.get(i, self.empty[modality]) for i in rows]

    def batch(self, rows) -> dict:
        rows = np.asarray(rows)
        return {
            "inputs": {m: pad(self._rows(m, rows)) for m in self.modalities},
            "present": self.present[rows],
            "targets": {t: torch.as_tensor(self.table.targets[t][rows]) for t in self.tasks},
        }

    def _ranks(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def _loader(
        self,
        rows: np.ndarray,
        sampler: Sampler | None = None,
        batch_sampler: Sampler | None = None,
        persistent: bool = True,
    ) -> DataLoader:
        # a train epoch's last batch of one row is dropped: batch norm cannot train on a single value
        single = (
            sampler is not None and len(sampler) % self.batch_size == 1 and len(sampler) > self.batch_size
        )
        batching = (
            {"batch_sampler": batch_sampler}
            if batch_sampler
            else {"batch_size": self.batch_size, "sampler": sampler, "drop_last": single}
        )
        # Its own generator: with workers, each new iterator draws a base seed, and from the global
        # RNG that draw would shift dropout after a resume (a fresh iterator where persistent workers
        # went on), so resumed runs would not match uninterrupted ones bit for bit.
        return DataLoader(
            rows.tolist(),
            **batching,
            collate_fn=self.batch,
            num_workers=self.num_workers,
            persistent_workers=persistent and self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            generator=torch.Generator().manual_seed(self.seed),
        )

    def _lengths(self, rows: np.ndarray) -> np.ndarray | None:
        """Each row's length in the bucket_by modality; None when there is none or it is decoded per batch."""
        if self.settings.bucket_by is None or self.settings.bucket_by in self.per_batch:
            return None
        return self.features[self.settings.bucket_by].lengths(rows)

    def ordered(self, split: str) -> np.ndarray:
        """The rows of ``split`` in the order ``loader`` serves them (by length with ``bucket_by``)."""
        rows = self.table.indices(split)
        lengths = self._lengths(rows)
        if lengths is not None:  # similar lengths together: less padding (metrics do not depend on order)
            rows = rows[np.argsort(lengths, kind="stable")]
        return rows

    def loader(self, split: str, shard: bool = True) -> DataLoader:
        """The rows of ``split`` in ``ordered`` order. Sharded, each rank evaluates its own rows, with no
        padding, so metrics (synced by torchmetrics) count every row exactly once (Lightning's
        DistributedSampler would repeat rows); unsharded, one process sees them all."""
        rank, world = self._ranks() if shard else (0, 1)
        return self._loader(self.ordered(split)[rank::world], persistent=shard)

    def train_dataloader(self) -> DataLoader:
        rows = self.table.indices("train")
        weights = None
        if self.settings.sampler == "balanced":
            labels = self.table.targets[self.settings.balance_task][rows]
            known = labels >= 0  # a row without this target (multi-task data) gets the mean weight
            weights = 1.0 / np.bincount(labels[known])[np.maximum(labels, 0)]
            weights[~known] = weights[known].mean() if known.any() else 1.0
        rank, world = self._ranks()
        sampler = EpochSampler(len(rows), self.seed, weights, rank, world)
        # Lightning makes the first iterator before it restores a checkpoint's loops and calls
        # set_epoch, and DataLoader workers prefetch from it at once: a resumed run starts it at its
        # own epoch (start_epoch, from the checkpoint), or it would replay epoch 0's order.
        sampler.set_epoch(self.start_epoch)
        lengths = self._lengths(rows)
        if lengths is None:
            return self._loader(rows, sampler)
        return self._loader(rows, batch_sampler=LengthBuckets(sampler, lengths, self.batch_size, self.seed))

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.test_split)
