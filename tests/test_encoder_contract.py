"""The encoder contract, for every YAML of mmtrain/conf/encoder/<type>/: featurize real raw inputs of that
modality type, then forward padded batches: output shapes, finite outputs for a row without the
modality, padding ignored, and gradients reaching every trainable parameter."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import mmtrain
from mmtrain.backbones.catalog import Backbone
from mmtrain.backbones.locate import installed_at
from mmtrain.core.errors import build
from mmtrain.core.tensors import pad
from mmtrain.encoders.base import Encoder
from mmtrain.encoders.text import MINILM
from mmtrain.modalities import MODALITIES

CONF = Path(mmtrain.__file__).parent / "conf" / "encoder"
YAMLS = sorted(f"{p.parent.name}/{p.stem}" for p in CONF.glob("*/*.yaml"))
# Smaller than the defaults where a YAML has the key, for a fast test; the architecture is the same.
SMALL = {"image_size": 32, "dim": 32, "hidden": 32, "width": 8, "heads": 2}
# Known and documented: a wav2vec2-style model has no attention mask, so its features depend on the padding.
PADDING_DEPENDENT = {"audio/hf"}


def raws(kind: str, folder: Path) -> list:
    """Three inputs of the modality type, of different lengths."""
    rng = np.random.default_rng(0)
    if kind == "text":
        return ["stocks rally on strong earnings", "a drop", "markets were flat today ahead of the decision"]
    if kind == "audio":
        return [rng.normal(0, 0.1, n).astype(np.float32) for n in (4000, 16000, 9000)]
    if kind == "image":
        from PIL import Image

        paths = []
        for i in range(3):
            paths.append(folder / f"{i}.png")
            Image.fromarray(rng.integers(0, 255, (20 + 10 * i, 24, 3), dtype=np.uint8)).save(paths[-1])
        return paths
    if kind == "tabular":
        return [(1.0, np.nan, "fr"), (2.0, 5.0, "de"), (3.0, 7.0, None)]
    return [rng.normal(size=(n, 2)).astype(np.float32) for n in (5, 12, 8)]  # sequence


def preprocessing(kind: str, values: list) -> dict | None:
    spec = {"tabular": {"numeric": ["a", "b"], "categorical": ["country"]}, "sequence": {}}.get(kind)
    return None if spec is None else MODALITIES.get(kind).fit(spec, values)


@pytest.fixture
def make(tmp_path, tiny_wav2vec2):
    def make(name: str) -> tuple[Encoder, list]:
        kind, option = name.split("/")
        with initialize_config_module("mmtrain.conf", version_base="1.3"):
            node = OmegaConf.to_container(
                compose("train", overrides=[f"+encoder/{kind}@probe={option}"]).probe
            )
        node.update({k: v for k, v in SMALL.items() if k in node})
        if node.get("backbone") and installed_at(Backbone.of(node["backbone"], name)) is None:
            pytest.skip(f"the backbone {node['backbone']['name']} is not installed (mmtrain-models get)")
        if name == "audio/hf":
            node["model"] = str(tiny_wav2vec2)
        if name == "text/hf":
            node["model"] = MINILM
        inputs = raws(kind, tmp_path)
        pre = preprocessing(kind, inputs)
        if pre is not None:
            node["preprocessing"] = pre
        torch.manual_seed(0)
        return build(node, f"encoder.{kind}"), inputs

    return make


def test_every_encoder_yaml_is_covered():
    kinds = {p.parent.name for p in CONF.glob("*/*.yaml")}
    assert kinds == set(MODALITIES.names()) and len(YAMLS) >= 18


@pytest.mark.parametrize("name", YAMLS)
def test_encoder_contract(name, make):
    encoder, inputs = make(name)
    features = encoder.featurize(inputs)
    x, mask = pad(features)
    encoder.eval()
    with torch.no_grad():
        out = encoder(x, mask)
    B, T = out.mask.shape
    assert B == 3 and out.tokens.shape == (B, T, encoder.out_dim) and out.pooled.shape == (B, encoder.out_dim)
    assert (
        out.mask.dtype == torch.bool and torch.isfinite(out.tokens).all() and torch.isfinite(out.pooled).all()
    )
    # a row without the modality (an all-False mask, zero input) still gives finite values
    missing = mask.clone()
    missing[1] = False
    with torch.no_grad():
        assert torch.isfinite(
            encoder(x * missing.view(*missing.shape, *[1] * (x.dim() - 2)), missing).pooled
        ).all()
    # the shortest row alone gives what it gives among longer, padded rows
    if name not in PADDING_DEPENDENT:
        with torch.no_grad():
            alone = encoder(*pad([features[0]])).pooled[0]
        torch.testing.assert_close(alone, out.pooled[0], atol=1e-4, rtol=1e-4)
    # gradients reach every trainable parameter (a frozen network has none: its features are its input)
    if not any(p.requires_grad for p in encoder.parameters()):
        return
    # Two steps: a zero-initialised layer (timm's ResNets zero the last norm of each block) passes
    # gradients on only once it has moved.
    encoder.train()
    optimizer = torch.optim.SGD(encoder.parameters(), lr=0.1)
    reached = set()
    g = torch.Generator().manual_seed(1)  # random directions: a sum of squares is constant after a norm layer
    for _ in range(2):
        optimizer.zero_grad()
        out = encoder(x, mask)
        (
            (out.tokens * torch.randn(out.tokens.shape, generator=g)).sum()
            + (out.pooled * torch.randn(out.pooled.shape, generator=g)).sum()
        ).backward()
        reached |= {n for n, p in encoder.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
        optimizer.step()
    starved = [n for n, p in encoder.named_parameters() if p.requires_grad and n not in reached]
    assert not starved, f"no gradient reaches {starved}"
