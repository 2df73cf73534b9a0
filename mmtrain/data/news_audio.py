"""news_audio: the embedded default dataset, generated deterministically from a seed.

Each sample is a financial news headline (real English text) read by a synthetic "anchor": a 16 kHz
waveform of 1-3 s made of voiced syllables. Labels: ``sentiment`` (negative/neutral/positive,
imbalanced ~15/60/25), ``tags`` (multilabel topics, 0-3 per headline) and ``move`` (next-day price
move in %, a noisy function of sentiment).

Why it is a fair test of fusion: the two modalities carry partly independent parts of the label.
- Text: with probability ``text_informative`` the headline uses wording of its true sentiment
  ("plunges", "beats forecasts", "holds steady"); otherwise it is ambiguous wording drawn
  independently of the label ("shares move after ...").
- Audio: with probability ``audio_informative`` the anchor's tone follows the sentiment (falling
  pitch, slow and quiet for negative; rising, fast and loud for positive; a rise-fall for neutral);
  otherwise it is a flat monotone. Pitch level, tempo and loudness vary per clip, and noise is added.
So either modality alone leaves many samples ambiguous, and a fused model resolves most of them.
About ``missing_audio`` of the samples have no clip at all (the audio modality is absent).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import replace
from pathlib import Path

import numpy as np

from mmtrain.data.table import MultimodalTable, TaskSpec

CLASSES = ("negative", "neutral", "positive")
TAGS = ("earnings", "merger", "guidance", "layoffs", "lawsuit")
SAMPLE_RATE = 16_000

_NAME_HEADS = [
    "Acme",
    "Borea",
    "Cobalt",
    "Delta",
    "Evergreen",
    "Falcon",
    "Granite",
    "Harbor",
    "Ionic",
    "Juniper",
    "Keystone",
    "Lumen",
    "Meridian",
    "Northwind",
    "Orion",
    "Pinnacle",
    "Quantum",
    "Redwood",
    "Summit",
    "Titan",
    "Umbra",
    "Vertex",
    "Westfield",
    "Zenith",
]
_NAME_TAILS = [
    "Corp",
    "Inc",
    "Holdings",
    "Group",
    "Energy",
    "Bank",
    "Motors",
    "Foods",
    "Pharma",
    "Systems",
    "Retail",
    "Airlines",
    "Mining",
    "Telecom",
    "Capital",
    "Labs",
]
_WORDING = {
    "negative": [
        "shares plunge",
        "stock slumps",
        "misses forecasts",
        "cuts its outlook",
        "shares tumble",
        "posts a surprise loss",
        "falls sharply",
        "warns of weak demand",
        "stock sinks",
        "disappoints investors",
    ],
    "neutral": [
        "holds steady",
        "reports results in line with estimates",
        "shares flat",
        "maintains its dividend",
        "trades unchanged",
        "keeps guidance unchanged",
        "stock little changed",
        "meets expectations",
    ],
    "positive": [
        "shares soar",
        "beats forecasts",
        "raises its outlook",
        "stock jumps",
        "posts record profit",
        "rallies strongly",
        "surges to a record high",
        "tops estimates",
        "shares climb",
        "delights investors",
    ],
}
_AMBIGUOUS = [
    "shares move",
    "in focus",
    "investors react",
    "draws attention",
    "makes headlines",
    "under the spotlight",
    "stock active",
    "comments",
    "updates the market",
]
_TOPICS = {
    "earnings": ["quarterly earnings", "its annual results", "the earnings call"],
    "merger": ["merger talks", "a takeover bid", "the acquisition deal"],
    "guidance": ["new guidance", "its revenue forecast", "the full-year outlook"],
    "layoffs": ["job cuts", "a restructuring plan", "plant closures"],
    "lawsuit": ["a patent lawsuit", "the regulator's probe", "a court ruling"],
}
_CONNECTORS = ["after", "amid", "following", "on"]
_MOVE_MEAN = np.array([-1.5, 0.0, 1.0])
# The columns a manifest of this data has (write_manifest), so a model trained on it reads such files.
SPEC = {
    "modalities": {"text": {"type": "text", "column": "text"}, "audio": {"type": "audio", "column": "audio"}},
    "targets": {
        "sentiment": {"column": "sentiment", "type": "multiclass", "separator": "|"},
        "tags": {"column": "tags", "type": "multilabel", "separator": "|"},
        "move": {"column": "move", "type": "regression", "separator": "|"},
    },
    "id_column": "id",
    "split_column": "split",
}


def generate(
    num_samples: int = 3000,
    seed: int = 0,
    class_priors=(0.15, 0.60, 0.25),
    text_informative: float = 0.5,
    audio_informative: float = 0.5,
    missing_audio: float = 0.03,
    split_fractions=(0.7, 0.15, 0.15),
) -> MultimodalTable:
    """Build the whole dataset in memory. Same arguments, same data, on any machine.

    The last dataset built is kept for the next call with the same arguments (a few seconds of
    synthesis per job of a local sweep, which runs its jobs in one process); each call gets its own
    containers, sharing only the waveforms, which nothing changes in place."""
    table = _generate(
        int(num_samples),
        int(seed),
        tuple(map(float, class_priors)),
        float(text_informative),
        float(audio_informative),
        float(missing_audio),
        tuple(map(float, split_fractions)),
    )
    return replace(
        table,
        modalities={m: list(v) for m, v in table.modalities.items()},
        targets={t: v.copy() for t, v in table.targets.items()},
        tasks=copy.deepcopy(table.tasks),
        split=table.split.copy(),
        modality_types=dict(table.modality_types),
        preprocessing={},
        spec=copy.deepcopy(table.spec),
    )


@functools.lru_cache(maxsize=1)
def _generate(
    num_samples: int,
    seed: int,
    class_priors: tuple,
    text_informative: float,
    audio_informative: float,
    missing_audio: float,
    split_fractions: tuple,
) -> MultimodalTable:
    rng = np.random.default_rng(seed)
    n = int(num_samples)
    sentiment = rng.choice(3, size=n, p=np.asarray(class_priors) / np.sum(class_priors))
    tags = np.zeros((n, len(TAGS)), dtype=np.float32)
    texts, clips = [], []
    for i in range(n):
        label = CLASSES[sentiment[i]]
        topics = rng.choice(len(TAGS), size=rng.choice(4, p=[0.2, 0.45, 0.25, 0.1]), replace=False)
        tags[i, topics] = 1.0
        texts.append(_headline(rng, label if rng.random() < text_informative else None, topics))
        has_audio = rng.random() >= missing_audio
        tone = label if rng.random() < audio_informative else None
        clips.append(_anchor_clip(rng, tone) if has_audio else None)
    move = (_MOVE_MEAN[sentiment] + rng.normal(0.0, 0.8, size=n)).astype(np.float32)
    return MultimodalTable(
        modalities={"text": texts, "audio": clips},
        targets={"sentiment": sentiment.astype(np.int64), "tags": tags, "move": move},
        tasks={
            "sentiment": TaskSpec("multiclass", list(CLASSES)),
            "tags": TaskSpec("multilabel", list(TAGS)),
            "move": TaskSpec("regression"),
        },
        split=_stratified_split(rng, sentiment, split_fractions),
        sample_rate=SAMPLE_RATE,
        modality_types={"text": "text", "audio": "audio"},
        spec=SPEC,
    )


def _headline(rng, label: str | None, topics) -> str:
    company = f"{rng.choice(_NAME_HEADS)} {rng.choice(_NAME_TAILS)}"
    wording = rng.choice(_WORDING[label] if label else _AMBIGUOUS)
    text = f"{company} {wording}"
    if len(topics):
        phrases = [str(rng.choice(_TOPICS[TAGS[t]])) for t in topics]
        joined = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
        text += f" {rng.choice(_CONNECTORS)} {joined}"
    return text


def _anchor_clip(rng, tone: str | None) -> np.ndarray:
    """A 1-3 s voiced 'reading' whose pitch contour, tempo and loudness carry the tone."""
    duration = rng.uniform(1.0, 3.0)
    t = np.arange(int(duration * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
    u = t / duration  # 0..1 position in the clip
    base_f0 = rng.uniform(100.0, 220.0)  # speaker pitch: carries no label
    # (pitch excursion over the clip, syllables per second, loudness) per tone, with jitter.
    if tone == "negative":
        contour, rate, gain = -rng.uniform(0.25, 0.45) * u, rng.uniform(2.0, 3.2), rng.uniform(0.2, 0.45)
    elif tone == "positive":
        contour, rate, gain = rng.uniform(0.25, 0.45) * u, rng.uniform(4.6, 6.0), rng.uniform(0.6, 0.9)
    elif tone == "neutral":
        contour, rate, gain = (
            rng.uniform(0.2, 0.35) * np.sin(np.pi * u),
            rng.uniform(3.2, 4.6),
            rng.uniform(0.4, 0.7),
        )
    else:  # uninformative: a flat monotone, otherwise like the neutral reading
        contour, rate, gain = 0.0 * u, rng.uniform(3.2, 4.6), rng.uniform(0.4, 0.7)
    f0 = base_f0 * (1.0 + contour)
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    voice = sum(np.sin(k * phase) / k for k in (1, 2, 3, 4))
    syllables = np.clip(np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)), 0.0, None) ** 0.5
    noise = rng.normal(0.0, rng.uniform(0.02, 0.08), size=t.shape)
    return (gain * 0.3 * voice * syllables + noise).astype(np.float32)


def _stratified_split(rng, labels: np.ndarray, fractions) -> np.ndarray:
    split = np.empty(len(labels), dtype=object)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        split[idx[:n_train]] = "train"
        split[idx[n_train : n_train + n_val]] = "val"
        split[idx[n_train + n_val :]] = "test"
    return split.astype(str)


def write_manifest(folder, **settings) -> Path:
    """The data of ``generate(**settings)`` as files: folder/manifest.csv (columns of SPEC: id, text,
    audio = a 16 kHz wav under folder/audio, sentiment, tags "a|b", move, split), as a user's own
    data would come. A row without a clip has an empty audio cell."""
    import pandas as pd
    import soundfile

    folder = Path(folder)
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    table = generate(**settings)
    rows = []
    for i, (text, clip) in enumerate(zip(table.modalities["text"], table.modalities["audio"])):
        audio = None
        if clip is not None:
            audio = f"audio/{i:05d}.wav"
            soundfile.write(folder / audio, clip, SAMPLE_RATE, subtype="FLOAT")  # the same samples back
        rows.append(
            {
                "id": f"n{i:05d}",
                "text": text,
                "audio": audio,
                "sentiment": CLASSES[table.targets["sentiment"][i]],
                "tags": "|".join(t for t, on in zip(TAGS, table.targets["tags"][i]) if on),
                "move": float(table.targets["move"][i]),
                "split": table.split[i],
            }
        )
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path
