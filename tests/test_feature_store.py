"""The on-disk feature store of frozen encoders' features: shards, reuse, damage, concurrency, DDP shares."""

import threading

import numpy as np
import pytest
import torch

from mmtrain.data import feature_store
from mmtrain.data.feature_store import FeatureStore, StoredFeatures, featurizers, fingerprint
from mmtrain.encoders.text import HFTextEncoder
from mmtrain.train import prepare


@pytest.fixture(autouse=True)
def small_shards(monkeypatch):
    monkeypatch.setattr(feature_store, "SHARD_ROWS", 4)


def counting_featurize(calls):
    """Variable-length features [len(raw), 3] filled with the raw's first character code."""

    def featurize(raws):
        calls.append(len(raws))
        return [torch.full((len(str(r)), 3), float(ord(str(r)[0]))) for r in raws]

    return featurize


RAWS = ["a", "bb", "ccc", "d", "eeeee", "ff", "g", "hh", "iii", "j"]  # 3 shards of 4, 4, 2 rows


def test_rows_read_back_per_sample_with_lengths(tmp_path):
    calls = []
    stored = FeatureStore(counting_featurize(calls), {"encoder": "X"}, tmp_path)(RAWS)
    assert isinstance(stored, StoredFeatures) and len(stored) == len(RAWS) and calls == [4, 4, 2]
    for raw, features in zip(RAWS, stored):
        assert torch.equal(features, torch.full((len(raw), 3), float(ord(raw[0]))))
    assert stored.lengths().tolist() == [len(r) for r in RAWS]
    assert len(list((tmp_path).glob("*/*.values.npy"))) == 3


def test_hit_miss_and_invalidation(tmp_path):
    calls = []
    key = {"encoder": "X", "files": "abc"}
    FeatureStore(counting_featurize(calls), key, tmp_path)(RAWS)
    FeatureStore(counting_featurize(calls), key, tmp_path)(RAWS)
    assert calls == [4, 4, 2]  # the second run computed nothing
    FeatureStore(counting_featurize(calls), key, tmp_path)(
        RAWS[:9] + ["k"]
    )  # one row of the last shard changed
    assert calls == [4, 4, 2, 2]
    FeatureStore(counting_featurize(calls), {**key, "files": "abd"}, tmp_path)(RAWS)  # the encoder changed
    assert calls == [4, 4, 2, 2, 4, 4, 2]


def test_files_are_fingerprinted_by_content(tmp_path):
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"one")
    before = fingerprint([clip])
    clip.write_bytes(b"two")
    assert fingerprint([clip]) != before


def test_damaged_shard_is_recomputed_alone(tmp_path):
    calls = []
    FeatureStore(counting_featurize(calls), {"k": 1}, tmp_path)(RAWS)
    first = sorted(tmp_path.glob("*/*.values.npy"), key=lambda p: p.stat().st_size)[-1]
    first.write_bytes(first.read_bytes()[:-5])  # truncated
    stored = FeatureStore(counting_featurize(calls), {"k": 1}, tmp_path)(RAWS)
    assert calls == [4, 4, 2, 4]
    assert [len(f) for f in stored] == [len(r) for r in RAWS]


def test_concurrent_writers_leave_whole_shards(tmp_path):
    results = []
    threads = [
        threading.Thread(
            target=lambda: results.append(
                list(FeatureStore(counting_featurize([]), {"k": 2}, tmp_path)(RAWS * 5))
            )
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(torch.equal(a, b) for r in results for a, b in zip(r, results[0]))
    assert not list(tmp_path.glob("*/*.tmp"))
    calls = []
    FeatureStore(counting_featurize(calls), {"k": 2}, tmp_path)(RAWS * 5)
    assert calls == []


def test_ranks_started_together_each_compute_their_share(tmp_path):
    calls = {0: [], 1: []}
    out = {}

    def rank(r):
        out[r] = FeatureStore(counting_featurize(calls[r]), {"k": 3}, tmp_path, share=(r, 2))(RAWS)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == {0: [4, 2], 1: [4]}  # shards 0 and 2 on rank 0, shard 1 on rank 1
    assert [len(f) for f in out[0]] == [len(f) for f in out[1]] == [len(r) for r in RAWS]


def test_frozen_features_follow_the_runs_autocast(tmp_path):
    encoder = HFTextEncoder(freeze=True, max_length=16)
    fp32 = featurizers({"text": encoder}, tmp_path)["text"](["stocks rally", "a drop"])
    bf16 = featurizers({"text": encoder}, tmp_path, precision="bf16-mixed")["text"](
        ["stocks rally", "a drop"]
    )
    assert len(list(tmp_path.iterdir())) == 2  # separate entries: bf16 features differ from fp32 ones
    assert bf16[0].dtype == torch.float32 and bf16[0].shape == fp32[0].shape
    assert 0 < (bf16[0] - fp32[0]).abs().max() < 0.1


@pytest.mark.parametrize("store", [True, False])
def test_a_frozen_network_is_loaded_once_per_featurizing_pass(tmp_path, monkeypatch, store):
    encoder = HFTextEncoder(freeze=True, max_length=16)
    loads, unloads = [], []
    load, unload = encoder.load, encoder.unload
    # counted when a call builds the network or lets it go (featurize asks for it per shard too)
    monkeypatch.setattr(encoder, "load", lambda: loads.append("model" not in encoder._modules) or load())
    monkeypatch.setattr(encoder, "unload", lambda: unloads.append("model" in encoder._modules) or unload())
    featurize = featurizers({"text": encoder}, tmp_path if store else None)["text"]
    assert len(featurize([f"text {i}" for i in range(10)])) == 10  # 3 shards of 4 rows
    assert sum(loads) == 1 and sum(unloads) == 1 and "model" not in encoder._modules
    featurize([f"more text {i}" for i in range(5)])  # a second pass loads again, once
    assert sum(loads) == 2 and sum(unloads) == 2


def test_second_run_reads_frozen_minilm_features_from_disk(cfg_factory, monkeypatch):
    cfg = cfg_factory("encoder/text=minilm", "modalities=[text]")
    _, first = prepare(cfg)
    assert isinstance(first.features["text"].values, StoredFeatures)  # read per batch, not held per row

    def must_not_run(self, raws):
        raise AssertionError("frozen MiniLM re-encoded despite a warm store")

    monkeypatch.setattr(HFTextEncoder, "featurize", must_not_run)
    _, second = prepare(cfg)
    rows = np.arange(len(first.features["text"]))
    assert all(torch.equal(first.features["text"][i], second.features["text"][i]) for i in rows)
    with pytest.raises(AssertionError, match="re-encoded"):  # and a changed setting misses it
        prepare(cfg_factory("encoder/text=minilm", "modalities=[text]", "encoder.text.max_length=32"))
