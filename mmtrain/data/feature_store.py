"""The feature store: a frozen encoder's features computed once, in shards, kept on disk and read per
batch, so memory does not grow with the number of rows. Shared by every run and sweep job that
points at the same ``cache_dir`` (on shared storage for a Slurm sweep).

Layout: ``<cache_dir>/<encoder key>/<shard key>.{values,offsets}.npy``. The encoder key hashes the
encoder's ``cache_key()`` (class, settings, a fingerprint of its model files, the autocast dtype);
a shard holds ``SHARD_ROWS`` consecutive rows and its key hashes their raw inputs (file contents for
paths), so changed data misses only the shards it touches. ``values`` is the shard's per-sample
features ``[T_i, *dims]`` concatenated along the first axis, ``offsets`` (int64, n + 1) where each
sample starts. Both are written to a temporary file and renamed into place, values first: a shard
whose offsets file exists is whole, concurrent writers each write whole files (the last rename
wins, with the same content), and a shard that does not read back (truncated, damaged) is computed
again. Rows are read with plain file reads (not a memory map), so reading an epoch does not add the
store's size to the process's resident memory.

Under DDP with ranks started together (torchrun, srun), each rank computes every world-th missing
shard and then waits for the other ranks' shards to appear (a file barrier: the process group does
not exist yet when data is prepared). Started by Lightning's launcher, rank 0 computes all before
the other ranks start, and they find every shard in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from mmtrain.core.files import atomic_write
from mmtrain.runtime.devices import autocast, autocast_dtype, place
from mmtrain.runtime.progress import Progress

log = logging.getLogger(__name__)
SHARD_ROWS = 512  # rows per shard: a frozen resnet18's shard is ~50 MB, its decoded inputs ~300 MB
WAIT_S = 1800  # how long a rank waits for the other ranks' shards (as torch.distributed's default timeout)


def fingerprint(raws: list) -> str:
    """sha256 over the raw inputs: text as UTF-8, arrays as their bytes, files (``Path``) by their
    content, anything else as repr."""
    digest = hashlib.sha256()
    for raw in raws:
        if isinstance(raw, Path):
            data = raw.read_bytes()
        elif isinstance(raw, str):
            data = raw.encode()
        elif isinstance(raw, np.ndarray):
            data = raw.tobytes() + str(raw.dtype).encode()
        else:
            data = repr(raw).encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def rank_share(expected_world: int) -> tuple[int, int]:
    """(rank, world size) of processes that prepare data at the same time: torchrun's RANK /
    WORLD_SIZE, or srun's SLURM_PROCID / SLURM_NTASKS, when that world is the trainer's
    (``expected_world`` = devices x nodes under DDP); (0, 1) otherwise: a single process, Lightning's
    own launcher's first process (it prepares everything before it starts the others), or a Slurm
    allocation of more tasks than this run uses (waiting for ranks that never start would hang)."""
    for rank, world in (("RANK", "WORLD_SIZE"), ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank in os.environ and world in os.environ and int(os.environ[world]) == expected_world > 1:
            return int(os.environ[rank]), expected_world
    return 0, 1


class StoredFeatures(Sequence):
    """The features of a column's rows, read from the store's shards one sample at a time. Holds
    only the paths and the offsets, so it pickles cheaply into DataLoader workers."""

    def __init__(self, shards: list[Path], offsets: list[np.ndarray]):
        self.shards, self.offsets = shards, offsets
        self.layout = [_layout(path) for path in shards]  # (data start, dtype, dims) of each values file
        self.count = sum(len(o) - 1 for o in offsets)  # once: __getitem__ runs per sample, in collate

    def __len__(self) -> int:
        return self.count

    def lengths(self) -> np.ndarray:
        return np.concatenate([np.diff(o) for o in self.offsets])

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < self.count:
            raise IndexError(i)
        shard, local = divmod(int(i), SHARD_ROWS)
        start, stop = self.offsets[shard][local : local + 2]
        data_start, dtype, dims = self.layout[shard]
        row_items = int(np.prod(dims, dtype=np.int64))
        with open(self.shards[shard], "rb") as handle:
            handle.seek(data_start + int(start) * row_items * dtype.itemsize)
            values = np.fromfile(handle, dtype=dtype, count=int(stop - start) * row_items)
        return torch.from_numpy(values.reshape(int(stop - start), *dims))


def _layout(values_path: Path) -> tuple[int, np.dtype, tuple[int, ...]]:
    with open(values_path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(handle)
        if fortran:
            raise ValueError(f"{values_path}: Fortran-ordered")
        return handle.tell(), dtype, tuple(shape[1:])


def _write(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            np.save(out, array)

    atomic_write(path, write)


def _read_offsets(values: Path, offsets: Path, rows: int, quiet: bool = False) -> np.ndarray | None:
    """A shard's offsets when the shard is whole (offsets for ``rows`` samples that end where the
    values end), else None (missing, or to be computed again)."""
    if not offsets.is_file():
        return None
    try:
        found = np.load(offsets)
        data_start, dtype, dims = _layout(values)
        whole = data_start + int(found[-1]) * int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
        if len(found) == rows + 1 and found[0] == 0 and values.stat().st_size == whole:
            return found
        raise ValueError(
            f"{len(found) - 1} rows and {values.stat().st_size} bytes, expected {rows} rows, {whole} bytes"
        )
    except Exception as err:
        if quiet:
            return None
        log.warning("Feature store shard %s is damaged (%s): computing it again", values.name, err)
        return None


class FeatureStore:
    """``featurize`` (list of raw inputs -> list of per-sample tensors) behind the store: calling it
    returns a ``StoredFeatures`` over the given rows, computing only the shards not on disk."""

    def __init__(
        self,
        featurize: Callable[[list], list[torch.Tensor]],
        encoder_key: dict,
        cache_dir: str | os.PathLike,
        share: tuple[int, int] = (0, 1),
        name: str = "features",
    ):
        key = hashlib.sha256(json.dumps(encoder_key, sort_keys=True).encode()).hexdigest()[:32]
        self.root = Path(cache_dir).expanduser() / key
        self.featurize, self.encoder_key, self.share, self.name = featurize, encoder_key, share, name

    def __call__(self, raws: list) -> StoredFeatures:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "encoder.json").write_text(json.dumps(self.encoder_key, indent=1, sort_keys=True))
        chunks = [raws[s : s + SHARD_ROWS] for s in range(0, len(raws), SHARD_ROWS)]
        paths = [self.root / f"{fingerprint(chunk)[:32]}" for chunk in chunks]
        offsets = [_read_offsets(self._values(p), self._offsets(p), len(c)) for p, c in zip(paths, chunks)]
        rank, world = self.share
        missing = [s for s, o in enumerate(offsets) if o is None]
        mine = [s for s in missing if s % world == rank]
        if missing:
            log.info(
                "Feature store %s: %d of %d shards to compute%s (%s)",
                self.name,
                len(missing),
                len(chunks),
                f", {len(mine)} on rank {rank} of {world}" if world > 1 else "",
                self.root,
            )
        else:
            log.info("Feature store %s: all %d shards on disk (%s)", self.name, len(chunks), self.root)
        progress = (
            Progress(f"Encoding {self.name}", total=sum(len(chunks[s]) for s in mine)) if mine else None
        )
        for s in mine:
            offsets[s] = self._compute(paths[s], chunks[s])
            progress.update(len(chunks[s]))
        if progress:
            progress.close()
        self._wait(offsets, paths, chunks)
        return StoredFeatures([self._values(p) for p in paths], offsets)

    def _compute(self, path: Path, chunk: list) -> np.ndarray:
        features = self.featurize(chunk)
        offsets = np.concatenate([[0], np.cumsum([len(f) for f in features])]).astype(np.int64)
        _write(self._values(path), torch.cat(features).numpy())
        _write(self._offsets(path), offsets)
        return offsets

    def _wait(self, offsets: list, paths: list[Path], chunks: list) -> None:
        """The other ranks' shards (a file barrier), polled until they are whole."""
        deadline = time.monotonic() + WAIT_S
        while True:
            pending = [s for s, o in enumerate(offsets) if o is None]
            for s in pending:
                if self._offsets(paths[s]).is_file():
                    offsets[s] = _read_offsets(
                        self._values(paths[s]), self._offsets(paths[s]), len(chunks[s]), quiet=True
                    )
            if all(o is not None for o in offsets):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Feature store {self.name}: waited {WAIT_S} s for "
                    f"{len(pending)} shards that other ranks compute "
                    f"(in {self.root}); a rank may have failed: see "
                    "its log, then run again (whole shards are kept)."
                )
            time.sleep(1.0)

    @staticmethod
    def _values(path: Path) -> Path:
        return path.with_name(path.name + ".values.npy")

    @staticmethod
    def _offsets(path: Path) -> Path:
        return path.with_name(path.name + ".offsets.npy")


def encoded_in_chunks(
    featurize: Callable[[list], list[torch.Tensor]], name: str
) -> Callable[[list], list[torch.Tensor]]:
    """Without a cache_dir: the same chunks and progress as the store, the features kept in memory."""

    def run(raws: list) -> list[torch.Tensor]:
        progress, out = Progress(f"Encoding {name}", total=len(raws)), []
        for start in range(0, len(raws), SHARD_ROWS):
            out += featurize(raws[start : start + SHARD_ROWS])
            progress.update(len(raws[start : start + SHARD_ROWS]))
        progress.close()
        return out

    return run


class OnDevice:
    """The encoder's featurize run on ``device`` (the trainer's) under ``precision``'s autocast. Its
    network is loaded at the first call and kept for the whole featurizing pass, however many shards
    that pass computes (a 110 M-parameter model takes seconds to load); ``close`` ends the pass: the
    network is let go and the encoder goes back where it was (Lightning moves the model when training
    starts)."""

    def __init__(self, encoder, device: torch.device, precision: str):
        self.encoder, self.device, self.precision = encoder, device, precision
        self.home: torch.device | None = None  # set while a pass holds the network on ``device``

    def __call__(self, raws: list) -> list[torch.Tensor]:
        if self.home is None:
            self.home = next(self.encoder.parameters(), torch.empty(0)).device
            self.encoder.load()
            place(self.encoder, self.device)
        with autocast(self.precision, self.device):
            return self.encoder.featurize(raws)

    def close(self) -> None:
        if self.home is None:
            return
        # a frozen network's weights are not needed to train on its features; a server keeps them
        # (inference.RowReader.keep_resident)
        if not getattr(self.encoder, "resident", False):
            self.encoder.unload()
        place(self.encoder, self.home)
        self.home = None


def one_pass(run: Callable[[list], Sequence[torch.Tensor]], frozen: OnDevice):
    """``run`` (the store or the in-memory chunks over ``frozen``) as one featurizing pass per call."""

    def featurize(raws: list) -> Sequence[torch.Tensor]:
        try:
            return run(raws)
        finally:
            frozen.close()

    return featurize


def featurizers(
    encoders,
    cache_dir,
    device: str | torch.device = "cpu",
    precision: str = "32-true",
    share: tuple[int, int] = (0, 1),
) -> dict[str, Callable[[list], Sequence[torch.Tensor]]]:
    """Each modality's ``featurize``: as the encoder has it when featurizing is cheap (no cache key);
    for a frozen network, run on ``device`` in ``precision``'s autocast, in shards, into the store
    under ``cache_dir`` (in memory without one)."""
    device = torch.device(device)
    out = {}
    for m, encoder in encoders.items():
        key = encoder.cache_key()
        if key is None:
            out[m] = encoder.featurize
            continue
        dtype = autocast_dtype(precision, device)
        frozen = OnDevice(encoder, device, precision)
        key = {**key, "autocast": str(dtype) if dtype else None}  # bf16 features differ from fp32 ones
        name = f"{m} on {device}" + (f" (autocast {str(dtype).removeprefix('torch.')})" if dtype else "")
        run = (
            FeatureStore(frozen, key, cache_dir, share, name)
            if cache_dir
            else encoded_in_chunks(frozen, name)
        )
        out[m] = one_pass(run, frozen)
    return out


def decoded_per_batch(encoders, table, modalities: list[str]) -> list[str]:
    """The modalities read from files (image, audio paths) whose featurizing is not fixed (the encoder
    trains, so it has no cache key): decoded per batch in the DataLoader workers rather than held in
    memory for every row. A frozen encoder's features are computed once, into the store."""

    def from_files(m: str) -> bool:
        return isinstance(next((v for v in table.modalities[m] if v is not None), None), Path)

    return [m for m in modalities if encoders[m].cache_key() is None and from_files(m)]
