"""On-disk cache of featurized inputs, for encoders whose featurize stage is expensive and fixed
(a frozen pretrained network). Reused across runs and sweep jobs.

The key is a hash of the encoder's ``cache_key()`` (its class, settings and a fingerprint of its
weight files) and of every raw input in order, so a change of data or encoder misses the cache.
Entries are written to a temporary file and renamed into place: two jobs writing the same entry at
once each write a whole file and the last rename wins; a reader never sees a partial file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

log = logging.getLogger(__name__)


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


def cached(featurize: Callable[[list], list[torch.Tensor]], encoder_key: dict | None,
           cache_dir: str | os.PathLike | None) -> Callable[[list], list[torch.Tensor]]:
    """``featurize`` with the disk cache in front of it; unchanged when there is no key or dir."""
    if encoder_key is None or cache_dir is None:
        return featurize

    def with_cache(raws: list) -> list[torch.Tensor]:
        root = Path(cache_dir).expanduser()
        key = hashlib.sha256((json.dumps(encoder_key, sort_keys=True) + fingerprint(raws)).encode()).hexdigest()
        path = root / f"{key[:32]}.pt"
        if path.is_file():
            try:
                features = torch.load(path, weights_only=True)
                log.info("Feature cache hit: %s", path)
                return features
            except Exception as err:  # a damaged entry is recomputed and replaced
                log.warning("Feature cache entry %s unreadable (%s): recomputing", path, err)
        features = featurize(raws)
        root.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=root, prefix=path.stem, suffix=".tmp")
        os.close(handle)
        torch.save(features, tmp)
        os.replace(tmp, path)
        log.info("Feature cache written: %s", path)
        return features

    return with_cache


def featurizers(encoders, cache_dir) -> dict[str, Callable[[list], list[torch.Tensor]]]:
    """Each modality's encoder ``featurize``, behind the disk cache where the encoder has a cache key."""
    return {m: cached(e.featurize, e.cache_key(), cache_dir) for m, e in encoders.items()}


def decoded_per_batch(encoders, table, modalities: list[str]) -> list[str]:
    """The modalities read from files (image, audio paths) whose featurizing is not fixed (the encoder
    trains, so it has no cache key): decoded per batch in the DataLoader workers rather than held in
    memory for every row. A frozen encoder's features are computed once (and cached on disk)."""
    def from_files(m: str) -> bool:
        return isinstance(next((v for v in table.modalities[m] if v is not None), None), Path)

    return [m for m in modalities if encoders[m].cache_key() is None and from_files(m)]
