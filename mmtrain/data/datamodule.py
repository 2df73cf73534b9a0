"""The Lightning datamodule: featurizes each modality once, then serves padded batches."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from mmtrain.data.table import MultimodalTable
from mmtrain.tensors import pad
from mmtrain.errors import ConfigError

log = logging.getLogger(__name__)
SAMPLERS = ("random", "balanced")


class EpochSampler(Sampler[int]):
    """Shuffles train rows with a generator seeded by (seed, epoch), so a resumed run sees the same
    order as an uninterrupted one. With ``weights`` it draws rows with replacement in proportion to
    them (the balanced sampler). Under DDP each of ``world`` ranks takes every world-th position of
    one shared order (wrapped round so all ranks do the same number of steps). Lightning calls
    ``set_epoch`` each epoch."""

    def __init__(self, num_rows: int, seed: int, weights: np.ndarray | None = None, rank: int = 0,
                 world: int = 1):
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
        return iter(order[self.rank::self.world].tolist())


class LengthBuckets(Sampler[list[int]]):
    """Batches of rows of similar length (less padding for a fine-tuned transformer): the epoch's
    order from ``sampler`` is cut into pools of ``pool`` batches, each pool sorted by length and cut
    into batches, and the batches shuffled; all seeded by (seed, epoch), so resume sees the same
    batches. ``set_epoch`` reaches the row sampler too."""

    def __init__(self, sampler: EpochSampler, lengths: np.ndarray, batch_size: int, seed: int, pool: int = 50):
        self.sampler, self.lengths, self.batch_size, self.seed, self.pool = sampler, lengths, batch_size, seed, pool

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)

    def __iter__(self):
        order = list(self.sampler)
        size = self.batch_size * self.pool
        batches = []
        for start in range(0, len(order), size):
            chunk = sorted(order[start:start + size], key=lambda i: self.lengths[i])
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.sampler.epoch + 7)
        return iter([batches[i] for i in torch.randperm(len(batches), generator=g).tolist()])


class MultimodalDataModule(L.LightningDataModule):
    """Serves batches {"inputs": {m: (x, mask)}, "present": bool [B, M], "targets": {task: y}}.

    featurizers: modality -> the encoder's ``featurize`` (list of raw values -> list of per-sample
    tensors); it runs once over every row that has the modality, then the results are reused.
    """

    def __init__(self, table: MultimodalTable, modalities: list[str], tasks: list[str],
                 featurizers: dict[str, Callable], batch_size: int = 64, num_workers: int = 0,
                 sampler: str = "random", balance_task: str | None = None, seed: int = 0,
                 test_split: str = "test", bucket_by: str | None = None):
        super().__init__()
        if sampler not in SAMPLERS:
            raise ConfigError(f"data.sampler={sampler} is not known: use one of {', '.join(SAMPLERS)}.")
        if batch_size < 1:
            raise ConfigError(f"data.batch_size={batch_size} must be at least 1.")
        self.table, self.modalities, self.tasks = table, modalities, tasks
        self.featurizers, self.batch_size, self.num_workers = featurizers, batch_size, num_workers
        self.sampler_kind, self.balance_task, self.seed = sampler, balance_task, seed
        self.test_split = test_split  # which split test_dataloader serves (one trainer.test per test split)
        self.bucket_by = bucket_by  # train batches of similar length in this modality (see LengthBuckets)
        self.features: dict[str, list[torch.Tensor]] | None = None
        self.present = torch.tensor(
            np.stack([[v is not None for v in table.modalities[m]] for m in modalities], axis=1))

    def setup(self, stage: str | None = None) -> None:
        if self.features is None:
            self.features = {m: self._featurize(m) for m in self.modalities}

    def _featurize(self, modality: str) -> list[torch.Tensor]:
        raws = self.table.modalities[modality]
        rows = [i for i, v in enumerate(raws) if v is not None]
        start = time.perf_counter()
        log.info("Featurizing %s: %d rows ...", modality, len(rows))
        done = self.featurizers[modality]([raws[i] for i in rows])
        log.info("Featurized %s in %.1f s", modality, time.perf_counter() - start)
        empty = done[0].new_zeros((0, *done[0].shape[1:]))
        features = [empty] * len(raws)
        for i, f in zip(rows, done):
            features[i] = f
        return features

    def batch(self, rows) -> dict:
        rows = np.asarray(rows)
        return {
            "inputs": {m: pad([self.features[m][i] for i in rows]) for m in self.modalities},
            "present": self.present[rows],
            "targets": {t: torch.as_tensor(self.table.targets[t][rows]) for t in self.tasks},
        }

    def _ranks(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def _loader(self, rows: np.ndarray, sampler: Sampler | None = None) -> DataLoader:
        return DataLoader(rows.tolist(), batch_size=self.batch_size, sampler=sampler,
                          collate_fn=self.batch, num_workers=self.num_workers)

    def loader(self, split: str, shard: bool = True) -> DataLoader:
        """The rows of ``split`` in order (by length with ``bucket_by``). Sharded, each rank evaluates its own rows, with no
        padding, so metrics (synced by torchmetrics) count every row exactly once (Lightning's
        DistributedSampler would repeat rows); unsharded, one process sees them all."""
        rank, world = self._ranks() if shard else (0, 1)
        rows = self.table.indices(split)
        if self.bucket_by is not None:  # similar lengths together: less padding (metrics do not depend on order)
            rows = rows[np.argsort([len(self.features[self.bucket_by][i]) for i in rows], kind="stable")]
        return self._loader(rows[rank::world])

    def train_dataloader(self) -> DataLoader:
        rows = self.table.indices("train")
        weights = None
        if self.sampler_kind == "balanced":
            labels = self.table.targets[self.balance_task][rows]
            counts = np.bincount(labels)
            weights = 1.0 / counts[labels]
        rank, world = self._ranks()
        sampler = EpochSampler(len(rows), self.seed, weights, rank, world)
        if self.bucket_by is None:
            return self._loader(rows, sampler)
        lengths = np.array([len(self.features[self.bucket_by][i]) for i in rows])
        return DataLoader(rows.tolist(), batch_sampler=LengthBuckets(sampler, lengths, self.batch_size, self.seed),
                          collate_fn=self.batch, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.test_split)
