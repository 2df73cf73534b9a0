"""Audio files (.wav, .flac, .ogg at any sample rate; resampled by the encoder), or waveforms
already in memory (built-in data)."""

from __future__ import annotations

from mmtrain.core.media import check_audio
from mmtrain.modalities import MODALITIES
from mmtrain.modalities._files import FileModality


@MODALITIES.register
class Audio(FileModality):
    name = "audio"
    infer_order = 30
    suffixes = (".wav", ".flac", ".ogg")

    def check_file(self, path):
        return check_audio(path)
