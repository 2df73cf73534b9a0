"""Shared helpers: compose the real config (as the CLI would) and shrink it for speed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

import mmtrain.cli
import mmtrain.runtime.logs

mmtrain.cli.offline()  # as the entry points do: no hub look-ups (each hangs ~46 s without a network)
mmtrain.runtime.logs.setup()

# Small and fast, but the same code paths as a real run: a scratch text model, the image CNN, a small
# audio CNN.
FAST = [
    "encoder/text=scratch",
    "encoder.text.dim=32",
    "encoder.text.layers=1",
    "encoder.text.heads=2",
    "encoder/image=cnn",
    "encoder.audio.channels=32",
    "encoder.audio.layers=2",
    "fusion.dim=32",
    "data.source.num_samples=240",
    "data.batch_size=32",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "trainer.log_every_n_steps=1",
]


def make_cfg(out_dir: Path, *overrides: str, fast: bool = True):
    """The composed config with ``overrides``; with ``fast``, FAST too, less its settings of any
    group the overrides choose (encoder/text=minilm drops the scratch model's sizes; another
    dataset drops news_audio's size)."""
    chosen = [o.split("=")[0].lstrip("+") for o in overrides if "/" in o.split("=")[0]]
    if any(o.startswith(("data=", "experiment=")) for o in overrides):  # not news_audio: no num_samples
        chosen.append("data.source")
    shrink = [f for f in FAST if not any(f.startswith((g + "=", g.replace("/", ".") + ".")) for g in chosen)]
    with initialize_config_module("mmtrain.conf", version_base="1.3"):
        return compose(
            "train",
            overrides=[
                f"paths.output_dir={out_dir}",
                f"cache_dir={out_dir}/../cache",
                *(shrink if fast else []),
                *overrides,
            ],
        )


def run_cli(
    *args: str,
    cwd: Path | None = None,
    timeout: int = 600,
    env: dict | None = None,
    executable: list[str] | None = None,
):
    """Run ``executable`` (default: `python -m mmtrain`) and return the CompletedProcess."""
    command = executable or [sys.executable, "-m", "mmtrain"]
    return subprocess.run(
        command + list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture
def cfg_factory(tmp_path):
    return lambda *overrides, **kw: make_cfg(tmp_path / "run", *overrides, **kw)


class StopAfterEpoch:
    """A Lightning callback that interrupts training after ``epoch`` (as a crash or a time limit
    would), without changing anything else about the run."""

    def __new__(cls, epoch: int):
        from lightning.pytorch.callbacks import Callback

        class _Stop(Callback):
            def on_train_epoch_end(self, trainer, pl_module):
                if trainer.current_epoch >= epoch:
                    trainer.should_stop = True

        return _Stop()


@pytest.fixture(scope="session")
def toy_manifest(tmp_path_factory):
    """A 30-row manifest with every kind of column (tests/toy_data.py)."""
    import toy_data

    return toy_data.build(tmp_path_factory.mktemp("toy_manifest"), rows=30)


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    folder = tmp_path_factory.mktemp("wav2vec2")
    config = Wav2Vec2Config(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16),
        conv_stride=(5, 4),
        conv_kernel=(10, 8),
        num_conv_pos_embeddings=8,
        num_conv_pos_embedding_groups=2,
    )
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True).save_pretrained(folder)
    return folder
