"""What a person reads while a run goes: each line once, the run dir first, and off a terminal
(Slurm, nohup, CI) a log line per epoch and per share of a long epoch instead of a progress bar."""

from __future__ import annotations

import logging
import re


def test_lightning_lines_are_printed_once():
    import lightning  # noqa: F401  (its import adds a console handler of its own)

    import mmtrain.runtime.logs

    mmtrain.runtime.logs.setup()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        assert logging.getLogger(name).handlers == [] and logging.getLogger(name).propagate


def test_training_off_a_terminal_logs_epochs_and_their_progress(cfg_factory, caplog):
    from mmtrain.train import run

    caplog.set_level("INFO")
    run(
        cfg_factory(
            "trainer.max_epochs=2", "callbacks.log_progress.min_batches=1", "callbacks.log_progress.every=0.5"
        )
    )
    text = caplog.text
    assert text.index("Run dir: ") < text.index("Featurizing")
    assert re.search(r"epoch 1/2: 50% \(step \d+\), loss \d+\.\d{4}, epoch ends in \d+ s", text), text
    assert re.search(
        r"epoch 1/2 done \(step \d+, \d+ s\): loss \d+\.\d{4}, val/sentiment/f1_macro \d\.\d{4} "
        r"\(best \d\.\d{4}\), about \d+ s left",
        text,
    ), text
    assert re.search(r"epoch 2/2 done \(step \d+, \d+ s\): loss \d+\.\d{4}, val/sentiment/f1_macro", text)
