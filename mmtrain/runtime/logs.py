"""Logging and warning set-up for the entry points (each ``@hydra.main`` calls :func:`setup`)."""

from __future__ import annotations

import logging
import warnings

# Noise from inside Lightning that a user can do nothing about (or that is about a small dataset).
QUIET_WARNINGS = (
    "Experiment logs directory .* exists and is not empty",  # Hydra's files beside Lightning's metrics.csv
    "The number of training batches .* is smaller than the logging interval",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
    "The `srun` command is available on your system but is not used",
)


def setup() -> None:
    """Lightning adds its own console handlers; Hydra's root handlers already print (and file) its
    records, so Lightning's loggers propagate to them instead."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _drop_litlogger_tip not in rank_zero.filters:
        rank_zero.addFilter(_drop_litlogger_tip)


def _drop_litlogger_tip(record: logging.LogRecord) -> bool:
    """Lightning's advertisements for its cloud services (litlogger, litmodels)."""
    message = record.getMessage()
    return "litlogger" not in message and "litmodels" not in message
