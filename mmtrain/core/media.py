"""Reading media files: the one place that decodes audio and images, used by the data preflight
(to find bad files before training) and by the encoders (to featurize them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmtrain.core.errors import summary


def load_audio(path: Path, sample_rate: int | None = None) -> np.ndarray:
    """A mono float32 waveform, resampled to ``sample_rate`` (soxr) when that is given and differs
    from the file's rate. Multi-channel files are averaged to mono."""
    import soundfile

    wave, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)
    if sample_rate and rate != sample_rate:
        import soxr

        wave = soxr.resample(wave, rate, sample_rate).astype(np.float32)
    return wave


def check_audio(path: Path) -> str | None:
    """None if the file decodes to a non-empty finite waveform, else the reason."""
    try:
        wave = load_audio(path)
    except Exception as err:
        return f"unreadable audio ({summary(err, 120)})"
    if wave.size == 0:
        return "audio file has no samples"
    if not np.isfinite(wave).all():
        return "audio has NaN/inf samples"
    return None


def load_image(path: Path, mode: str = "RGB"):
    """A decoded PIL image in ``mode`` (RGB, or L for grayscale)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.convert(mode)


def check_image(path: Path) -> str | None:
    """None if the whole image decodes, else the reason. JPEGs decode at a reduced scale (draft),
    which still reads the whole stream, so truncation is caught at a fraction of the cost."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))
            image.load()
    except Exception as err:
        return f"unreadable image ({summary(err, 120)})"
    return None
