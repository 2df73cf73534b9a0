"""Image, tabular, sequence and transformers-audio encoders; augmentation; per-encoder learning rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import toy_data

from mmtrain.core.errors import ConfigError
from mmtrain.core.tensors import pad
from mmtrain.encoders.augment import ImageAugment, SpecAugment, token_dropout
from mmtrain.encoders.sequence import SequenceEncoder
from mmtrain.encoders.tabular import FTTransformerEncoder, TabularMLPEncoder
from mmtrain.modalities import MODALITIES
from mmtrain.modalities.tabular import apply as apply_tabular

ROWS = [(1.0, np.nan, "fr"), (2.0, 5.0, "de"), (3.0, 7.0, None)]


def tabular_pre():
    return MODALITIES.get("tabular").fit({"numeric": ["a", "b"], "categorical": ["country"]}, ROWS)


def test_ft_transformer_gives_one_token_per_column_and_mlp_one():
    pre = tabular_pre()
    x, mask = pad(apply_tabular(pre, ROWS))
    ft, mlp = FTTransformerEncoder(pre, dim=16, heads=2).eval(), TabularMLPEncoder(pre, dim=16).eval()
    assert ft(x, mask).tokens.shape == (3, 3, 16) and ft(x, mask).pooled.shape == (3, 16)
    assert mlp(x, mask).tokens.shape == (3, 1, 16)


@pytest.mark.parametrize("encoder", [TabularMLPEncoder, FTTransformerEncoder])
def test_a_high_cardinality_category_drops_to_unknown_in_training_only(encoder):
    """An id-like column (200 train values, each twice) is regularised; a 3-value column is not."""
    rows = [(float(i), f"shopper{i % 200}", ["a", "b", "c"][i % 3]) for i in range(400)]
    pre = MODALITIES.get("tabular").fit({"numeric": ["x"], "categorical": ["shopper", "colour"]}, rows)
    model = encoder(pre, dim=16, category_dropout=0.5)
    x, _ = pad(apply_tabular(pre, rows))
    _, _, codes = model.train().split(x)
    assert 0.35 < (codes[:, 0] == 0).float().mean() < 0.65  # shopper: about half dropped to unknown
    assert (codes[:, 1] > 0).all()  # colour: low cardinality, untouched
    _, _, codes = model.eval().split(x)
    assert (codes[:, 0] > 0).all()
    with pytest.raises(ConfigError, match="category_dropout=1.0 must be in"):
        encoder(pre, category_dropout=1.0)


def test_tabular_encoder_without_columns_is_a_clear_error():
    with pytest.raises(ConfigError, match="needs the data's columns: use it for a modality of type tabular"):
        TabularMLPEncoder(None)


@pytest.mark.parametrize("arch", ["gru", "lstm", "transformer"])
def test_sequence_encoder_ignores_padding(arch):
    torch.manual_seed(0)
    encoder = SequenceEncoder({"mean": [0.0, 0.0], "std": [1.0, 1.0]}, arch=arch, dim=16, heads=2).eval()
    short, long = torch.randn(5, 2), torch.randn(12, 2)
    alone = encoder(*pad([short])).pooled
    batched = encoder(*pad([short, long])).pooled[0]
    assert torch.allclose(alone[0], batched, atol=1e-5)


def test_image_cnn_featurizes_files_to_normalised_pixels(tmp_path):
    from mmtrain.encoders.image import ImageCNNEncoder

    rng = np.random.default_rng(0)
    toy_data.write_png(tmp_path / "a.png", 1, rng)
    encoder = ImageCNNEncoder(image_size=16, channels=1, width=8, layers=2)
    (pixels,) = encoder.featurize([tmp_path / "a.png"])
    assert pixels.shape == (1, 1, 16, 16) and pixels.max() > 0.5 and pixels.min() < -0.5
    out = encoder(*pad([pixels, pixels]))
    assert out.tokens.shape == (2, 16, 16)  # (16 / 2**2)**2 tokens of width 8 * 2


def test_timm_model_loads_local_weights_offline(tmp_path):
    import timm
    from safetensors.torch import save_file

    from mmtrain.encoders.image import TimmImageEncoder

    source = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    save_file(source.state_dict(), tmp_path / "weights.safetensors")
    encoder = TimmImageEncoder(
        "resnet10t",
        pretrained=True,
        image_size=32,
        pretrained_cfg_overlay={"file": str(tmp_path / "weights.safetensors")},
    )
    assert encoder.pretrained
    for name, tensor in source.state_dict().items():
        assert torch.equal(encoder.model.state_dict()[name], tensor), name
    toy_data.write_png(tmp_path / "a.png", 0, np.random.default_rng(0))
    (pixels,) = encoder.featurize([tmp_path / "a.png"])
    assert pixels.shape == (1, 3, 32, 32)  # RGB, resized and normalised per timm's data config
    assert encoder.eval()(*pad([pixels])).tokens.shape[-1] == encoder.out_dim == 512


def test_timm_unknown_model_and_missing_weights_are_clear_errors():
    from mmtrain.encoders.image import TimmImageEncoder

    with pytest.raises(ConfigError, match=r"name=resnet180 is not a timm model \(close: "):
        TimmImageEncoder("resnet180")
    with pytest.raises(
        ConfigError, match=r"mmtrain runs offline: give local weights with pretrained_cfg_overlay"
    ):
        TimmImageEncoder("resnet10t", pretrained=True)


def test_transformers_audio_model_from_a_local_folder(tiny_wav2vec2, tmp_path):
    from mmtrain.encoders.audio import HFAudioEncoder, waveforms

    rng = np.random.default_rng(0)
    toy_data.write_wav(tmp_path / "a.wav", 0, rng, rate=8000, seconds=0.25)  # 8 kHz file, 16 kHz model
    frozen = HFAudioEncoder(str(tiny_wav2vec2), freeze=True)
    (tokens,) = frozen.featurize([tmp_path / "a.wav"])
    samples = torch.tensor([len(waveforms([tmp_path / "a.wav"], 16000)[0])])  # resampled: 2x the 8 kHz length
    assert tokens.shape == (int(frozen.model._get_feat_extract_output_lengths(samples)), 32)
    assert frozen.cache_key()["files"] and frozen.pretrained
    tuned = HFAudioEncoder(str(tiny_wav2vec2), freeze=False)
    waves = tuned.featurize([tmp_path / "a.wav", tmp_path / "a.wav"])
    out = tuned(*pad(waves))
    out.pooled.sum().backward()
    assert out.tokens.shape[-1] == 32 and all(p.grad is not None for p in tuned.model.encoder.parameters())


def test_augmentation_only_in_training():
    torch.manual_seed(0)
    frames, mask = torch.randn(4, 50, 16), torch.ones(4, 50, dtype=torch.bool)
    spec = SpecAugment(time_mask=10, freq_mask=4, gain_db=6, noise_db=20, freq_shift=2)
    assert torch.equal(spec.eval()(frames, mask), frames)
    changed = spec.train()(frames, mask)
    assert changed.shape == frames.shape and not torch.equal(changed, frames)
    images = torch.randn(4, 1, 16, 16)
    augment = ImageAugment(degrees=15, translate=0.1)
    assert torch.equal(augment.eval()(images), images)
    assert not torch.equal(augment.train()(images), images)
    tokens = torch.ones(4, 20, dtype=torch.bool)
    assert torch.equal(token_dropout(tokens, 0.5, training=False), tokens)
    dropped = token_dropout(tokens, 0.5, training=True)
    assert dropped[:, 0].all() and 0 < dropped.sum() < tokens.sum()


def test_text_columns_with_the_same_frozen_encoder_share_one_copy():
    from mmtrain.model.network import build_model

    minilm = {"_target_": "mmtrain.encoders.text.HFTextEncoder", "freeze": True}
    scratch = {"_target_": "mmtrain.encoders.text.ScratchTextEncoder", "dim": 16, "layers": 1, "heads": 2}
    cfg = {
        "encoder": {"title": minilm, "body": dict(minilm), "note": scratch, "tag": dict(scratch)},
        "fusion": {"_target_": "mmtrain.fusion.early.EarlyFusion", "dim": 16},
        "head": {"y": {"_target_": "mmtrain.model.heads.Head"}},
        "model": {},
    }
    model = build_model(
        cfg, ["title", "body", "note", "tag"], {"y": {"type": "binary", "classes": ["a", "b"]}}
    )
    assert model.encoders["title"] is model.encoders["body"]  # one frozen MiniLM, not two
    assert model.encoders["note"] is not model.encoders["tag"]  # trainable encoders stay each column's own
    assert 22_000_000 < model.encoders["title"].frozen_parameters() < 23_000_000  # MiniLM, counted once
    assert all(p.requires_grad for p in model.parameters())  # MiniLM is loaded only to compute features
