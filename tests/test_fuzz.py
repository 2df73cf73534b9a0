"""Property-based fuzzing of the whole data path on messy manifests (tests/messy_data.py): infer
the columns, check the rows, train one short epoch and predict on new rows. Every example must
either give a finite prediction for every new row or stop with a one-paragraph ConfigError /
DataError; never another exception, never a NaN in the predictions.

The suite runs a bounded, derandomised profile; ``python scripts/fuzz_manifests.py --examples 500``
runs the same test long (MMTRAIN_FUZZ_EXAMPLES)."""

from __future__ import annotations

import json
import os
import shutil
import uuid

import messy_data
import numpy as np
from conftest import make_cfg
from hypothesis import HealthCheck, given, settings

from mmtrain.core.errors import ConfigError

LONG = int(os.environ.get("MMTRAIN_FUZZ_EXAMPLES", "0"))
OUTCOMES = os.environ.get(
    "MMTRAIN_FUZZ_OUTCOMES"
)  # a JSONL file: one line per example (the script's summary)
TINY = [
    "encoder/text=scratch",
    "encoder.text.dim=16",
    "encoder.text.layers=1",
    "encoder.text.heads=2",
    "encoder.audio.channels=8",
    "encoder.audio.layers=1",
    "encoder.audio.sample_rate=8000",
    "encoder/image=cnn",
    "encoder.image.width=8",
    "encoder.image.layers=1",
    "encoder.image.image_size=8",
    "encoder.sequence.dim=8",
    "encoder.tabular.dim=8",
    "fusion.dim=16",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "callbacks.early_stopping.patience=1",
]


@settings(
    max_examples=LONG or 10,
    deadline=None,
    derandomize=not LONG,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(recipe=messy_data.recipes())
def test_messy_manifests_train_and_predict_or_fail_clearly(recipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp(f"fuzz-{uuid.uuid4().hex[:8]}")
    outcome = "exception"
    try:
        outcome = run_example(recipe, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if OUTCOMES:
            with open(OUTCOMES, "a") as handle:
                handle.write(json.dumps({"outcome": outcome, "recipe": repr(recipe)}) + "\n")


def run_example(recipe: messy_data.Recipe, folder) -> str:
    """-> "predicted", or the clear error's message."""
    from mmtrain import load_model
    from mmtrain.train import run

    path = messy_data.build(recipe, folder)
    cfg = make_cfg(
        folder / "run",
        "data=manifest",
        f"data.path={path}",
        "++data.targets.y.column=y",
        f"++data.targets.y.type={recipe.task}",
        f"data.on_bad_row={recipe.on_bad_row}",
        *TINY,
        fast=False,
    )
    try:
        run(cfg)
    except ConfigError as err:  # DataError included: the user's to fix, in one paragraph
        assert "\n" not in str(err).strip(), f"not one paragraph: {err}"
        return f"{type(err).__name__}: {err}"
    new = messy_data.frame_of(recipe, folder, seed_offset=1, target=False)
    predictions = load_model(folder / "run").predict(new, root=folder, on_bad_row="missing")
    assert len(predictions) == len(new)
    scores = predictions[
        [c for c in predictions.columns if c.startswith("prob_")]
        or [c for c in predictions.columns if c.startswith("pred_")]
    ]
    assert np.isfinite(scores.to_numpy(dtype=np.float64)).all(), predictions
    return "predicted"
