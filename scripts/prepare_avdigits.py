"""Build the avdigits dataset: every Free Spoken Digit Dataset recording paired with a handwritten digit
image of the same label, plus a degraded copy of that image, listed in one manifest.

Sources and licences:
  audio/  Free Spoken Digit Dataset (Jakobovski/free-spoken-digit-dataset), CC BY-SA 4.0
  images/ UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998) as shipped by
          scikit-learn's load_digits, CC BY 4.0
The combined collection falls under CC BY-SA 4.0 (ShareAlike from FSDD); attribute both sources.

Output under --out (paths in the manifest are relative to it):
  audio/<digit>_<speaker>_<take>.wav  copies of the FSDD recordings
  images/<digits_index:04d>_<label>.png  the 8x8 digit (0-16) scaled to 0-255 and upscaled x4 to
                                       32x32 by pixel repetition, grayscale
  images_hard/<id>.png               that image plus Gaussian noise (--sigma on 0-255) and a random
                                       --block x --block occluding square of one random grey level
  manifest.csv  id, image, audio, label, speaker, split, fsdd_split, fsdd_index, digits_index,
                image_hard
Splits: test_speaker = every recording of george (a speaker never seen in training); the other
speakers follow FSDD's own rule (takes 0-4 are test); of their remaining takes, 5-9 are val and
10-49 train. With the full FSDD that is train 2000 / val 250 / test 250 / test_speaker 500, each
balanced over the digits.
Pairing (--seed): per label, the digit images are shuffled and cut into one pool per split in
proportion to that split's recordings (rounded down; train takes the rest), so no image appears in
two splits. Walking the recordings in id order, each takes the next image from a shuffled deck of its
(split, label) pool, reshuffled when empty, so images are reused evenly. The noise and block of
images_hard are seeded by the CRC-32 of the row id, as in make_hard.py. With the defaults and FSDD
v1.0.10 this reproduces the shared copy of avdigits (its README; make_hard.py . 110 14) byte for byte.

Usage:
    python scripts/prepare_avdigits.py --fsdd path/to/free-spoken-digit-dataset --out data/avdigits
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits

TEST_SPEAKER = "george"
SPLITS = ("train", "val", "test", "test_speaker")  # order in which each label's images are cut
RECORDING = re.compile(r"(\d)_([a-z]+)_(\d+)\.wav")
COLUMNS = "id image audio label speaker split fsdd_split fsdd_index digits_index image_hard".split()


def read_recordings(fsdd: Path) -> pd.DataFrame:
    rows = []
    for wav in (fsdd / "recordings").glob("*.wav"):
        match = RECORDING.fullmatch(wav.name)
        if match is None:
            continue
        label, speaker, take = int(match[1]), match[2], int(match[3])
        fsdd_split = "test" if take < 5 else "train"
        if speaker == TEST_SPEAKER:
            split = "test_speaker"
        elif fsdd_split == "test":
            split = "test"
        else:
            split = "val" if take < 10 else "train"
        rows.append(
            {
                "id": f"av_{wav.stem}",
                "audio": f"audio/{wav.name}",
                "label": label,
                "speaker": speaker,
                "split": split,
                "fsdd_split": fsdd_split,
                "fsdd_index": take,
                "source": wav,
            }
        )
    # Id order fixes the order in which decks are drawn, hence the pairing.
    return pd.DataFrame(sorted(rows, key=lambda row: row["id"]))


def image_pools(targets: np.ndarray, rows: pd.DataFrame, rng: np.random.Generator) -> dict:
    counts = rows.groupby(["label", "split"]).size()
    pools = {}
    for label in range(10):
        images = rng.permutation(np.flatnonzero(targets == label))
        total = counts[label].sum()
        sizes = {s: len(images) * counts[label].get(s, 0) // total for s in SPLITS[1:]}
        sizes["train"] = len(images) - sum(sizes.values())
        start = 0
        for split in SPLITS:
            pools[split, label] = images[start : start + sizes[split]]
            start += sizes[split]
    return pools


def pair_images(rows: pd.DataFrame, pools: dict, rng: np.random.Generator) -> list[int]:
    decks: dict = {}
    picks = []
    for key in zip(rows["split"], rows["label"]):
        if not decks.get(key):
            decks[key] = list(rng.permutation(pools[key]))
        picks.append(int(decks[key].pop(0)))
    return picks


def clean_image(digit: np.ndarray) -> Image.Image:
    # 0-16 -> 0-255, then each of the 8x8 cells becomes a 4x4 block: 32x32 without interpolation blur.
    pixels = np.kron(np.rint(digit * 255 / 16), np.ones((4, 4))).astype(np.uint8)
    return Image.fromarray(pixels)


def hard_image(clean: Image.Image, row_id: str, sigma: float, block: int) -> Image.Image:
    # Seeded by the id (not --seed) so each row's degradation is stable whatever else changes.
    rng = np.random.default_rng(zlib.crc32(row_id.encode()))
    x = np.asarray(clean, dtype=np.float32)
    x = x + rng.normal(0, sigma, x.shape)
    i, j = rng.integers(0, x.shape[0] - block + 1, 2)
    x[i : i + block, j : j + block] = rng.uniform(0, 255)
    return Image.fromarray(np.clip(x, 0, 255).astype(np.uint8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", type=Path, required=True, help="FSDD checkout (has recordings/)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="seed of the image pairing")
    parser.add_argument("--sigma", type=float, default=110.0, help="noise std of images_hard, on 0-255")
    parser.add_argument("--block", type=int, default=14, help="side of the occluding block, pixels")
    args = parser.parse_args()

    rows = read_recordings(args.fsdd)
    if rows.empty:
        print(
            f"error: no <digit>_<speaker>_<take>.wav in {args.fsdd / 'recordings'}; pass --fsdd the "
            "root of a checkout of github.com/Jakobovski/free-spoken-digit-dataset",
            file=sys.stderr,
        )
        sys.exit(2)

    digits = load_digits()
    rng = np.random.default_rng(args.seed)
    pools = image_pools(digits.target, rows, rng)
    rows["digits_index"] = pair_images(rows, pools, rng)
    rows["image"] = [f"images/{i:04d}_{label}.png" for i, label in zip(rows["digits_index"], rows["label"])]
    rows["image_hard"] = "images_hard/" + rows["id"] + ".png"

    for sub in ("audio", "images", "images_hard"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    clean = {i: clean_image(digits.images[i]) for i in rows["digits_index"].unique()}
    for i, image in clean.items():
        # optimize=True (zlib level 9) and CRLF below give files byte-identical to the shared copy.
        image.save(args.out / f"images/{i:04d}_{digits.target[i]}.png", optimize=True)
    for row in rows.itertuples():
        shutil.copyfile(row.source, args.out / row.audio)
        hard_image(clean[row.digits_index], row.id, args.sigma, args.block).save(args.out / row.image_hard)
    rows[COLUMNS].to_csv(args.out / "manifest.csv", index=False, lineterminator="\r\n")

    per_split = rows["split"].value_counts()
    print(
        f"{len(rows)} rows in {args.out / 'manifest.csv'}: "
        + ", ".join(f"{s} {per_split.get(s, 0)}" for s in SPLITS)
    )


if __name__ == "__main__":
    main()
