"""Tiny multimodal manifests built on the fly (wav, png, npy files and a CSV/Parquet/JSONL table):
every modality carries the class y in {0, 1, 2}, so a model that reads any of them beats chance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

WORDS = ["bleak", "steady", "bright"]
COUNTRIES = ["fr", "de", "us"]
TAGS = ["alpha", "beta", "gamma"]
CATEGORIES = ["sports", "tech", "health"]


def write_wav(path: Path, y: int, rng, rate: int = 8000, seconds: float = 0.25) -> None:
    import soundfile

    t = np.arange(int(rate * seconds * (1 + 0.5 * rng.random()))) / rate
    wave = 0.4 * np.sin(2 * np.pi * (250 + 350 * y) * t) + 0.05 * rng.normal(size=t.size)
    soundfile.write(path, wave.astype(np.float32), rate)


def write_png(path: Path, y: int, rng, size: int = 16) -> None:
    from PIL import Image

    pixels = rng.integers(0, 60, (size, size)).astype(np.uint8)
    pixels[:, y * 5 : y * 5 + 5] = 230
    Image.fromarray(pixels).save(path)


def build(folder: Path, rows: int = 60, fmt: str = "csv", seed: int = 0) -> Path:
    """folder/manifest.<fmt> with columns id, audio, image, text, likes, shares, country, series,
    label and sentiment (the class y by name), category, tags ("a|b"), score (float), split; media
    under folder/media."""
    rng = np.random.default_rng(seed)
    media = folder / "media"
    media.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(rows):
        y = i % 3
        category = (i // 3) % 3
        write_wav(media / f"{i}.wav", y, rng)
        write_png(media / f"{i}.png", y, rng)
        steps = 8 + int(rng.integers(0, 8))
        series = np.stack([np.sin(np.arange(steps) * (0.3 + 0.5 * y)), rng.normal(size=steps) * 0.1], 1)
        records.append(
            {
                "id": f"s{i:03d}",
                "audio": f"media/{i}.wav",
                "image": f"media/{i}.png",
                "text": f"a {WORDS[y]} {CATEGORIES[category]} report number {i}",
                "likes": float(y + rng.normal() * 0.3),
                "shares": float(rng.integers(0, 100)),
                "country": COUNTRIES[(y + int(rng.random() < 0.2)) % 3],
                "series": json.dumps(np.round(series, 4).tolist()),
                "label": ["neg", "neu", "pos"][y],
                "sentiment": ["neg", "neu", "pos"][y],
                "category": CATEGORIES[category],
                "tags": "|".join(TAGS[: y + 1]),
                "score": float(y + rng.normal() * 0.1),
                "split": "train" if i % 10 < 6 else "val" if i % 10 < 8 else "test",
            }
        )
    frame = pd.DataFrame(records)
    path = folder / f"manifest.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(path)
    elif fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
    return path
