"""The on-disk cache of frozen encoders' features."""

import threading

import numpy as np
import pytest
import torch

from mmtrain.data.feature_cache import cached
from mmtrain.encoders.text import HFTextEncoder
from mmtrain.train import prepare


def counting_featurize(calls):
    def featurize(raws):
        calls.append(len(raws))
        return [torch.full((2, 3), float(len(str(r)))) for r in raws]
    return featurize


def test_hit_miss_and_invalidation(tmp_path):
    calls = []
    key = {"encoder": "X", "files": [("w.bin", 10, 1)]}
    first = cached(counting_featurize(calls), key, tmp_path)(["a", "bb"])
    again = cached(counting_featurize(calls), key, tmp_path)(["a", "bb"])
    assert calls == [2] and all(torch.equal(x, y) for x, y in zip(first, again))
    cached(counting_featurize(calls), key, tmp_path)(["a", "bc"])  # the data changed
    cached(counting_featurize(calls), {**key, "files": [("w.bin", 10, 2)]}, tmp_path)(["a", "bb"])  # the encoder
    assert calls == [2, 2, 2]
    cached(counting_featurize(calls), key, tmp_path)([np.zeros(3, np.float32)])
    cached(counting_featurize(calls), key, tmp_path)([np.ones(3, np.float32)])
    assert calls == [2, 2, 2, 1, 1]


def test_files_are_fingerprinted_by_content(tmp_path):
    from mmtrain.data.feature_cache import fingerprint

    clip = tmp_path / "a.wav"
    clip.write_bytes(b"one")
    before = fingerprint([clip])
    clip.write_bytes(b"two")
    assert fingerprint([clip]) != before


def test_no_key_or_no_dir_means_no_cache(tmp_path):
    featurize = counting_featurize([])
    assert cached(featurize, None, tmp_path) is featurize
    assert cached(featurize, {"encoder": "X"}, None) is featurize


def test_damaged_entry_is_recomputed(tmp_path):
    calls = []
    cached(counting_featurize(calls), {"k": 1}, tmp_path)(["a"])
    (entry,) = tmp_path.glob("*.pt")
    entry.write_bytes(b"not a checkpoint")
    assert cached(counting_featurize(calls), {"k": 1}, tmp_path)(["a"])[0].shape == (2, 3)
    assert calls == [1, 1]


def test_concurrent_writers_leave_one_whole_entry(tmp_path):
    results = []
    threads = [threading.Thread(target=lambda: results.append(cached(counting_featurize([]), {"k": 2}, tmp_path)(["x"] * 50)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(list(tmp_path.glob("*.pt"))) == 1 and not list(tmp_path.glob("*.tmp"))
    calls = []
    cached(counting_featurize(calls), {"k": 2}, tmp_path)(["x"] * 50)
    assert calls == []


def test_second_run_reads_frozen_minilm_features_from_disk(cfg_factory, monkeypatch):
    cfg = cfg_factory("encoder/text=minilm", "modalities=[text]")
    _, first = prepare(cfg)

    def must_not_run(self, raws):
        raise AssertionError("frozen MiniLM re-encoded despite a warm cache")
    monkeypatch.setattr(HFTextEncoder, "featurize", must_not_run)
    _, second = prepare(cfg)
    assert all(torch.equal(a, b) for a, b in zip(first.features["text"], second.features["text"]))
    with pytest.raises(AssertionError, match="re-encoded"):  # and a changed setting misses it
        prepare(cfg_factory("encoder/text=minilm", "modalities=[text]", "encoder.text.max_length=32"))
