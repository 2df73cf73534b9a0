"""Trained models that read new rows the way training did: ``load_model(path)`` gives the right one
for a neural run dir or checkpoint (network.TrainedModel), a model=gbm run (gbm.GbmModel) or an
ensemble dir (ensemble.EnsembleModel). Each has ``predict(frame)`` -> one row of predictions per kept
input row, with the same columns."""

from __future__ import annotations

from pathlib import Path

from mmtrain.core import artefacts


def load_model(run):
    """The trained model of ``run`` (a run dir, a checkpoint file, a model=gbm run or an ensemble dir)."""
    path = Path(str(run)).expanduser()
    if (path / artefacts.ENSEMBLE).is_file():
        from mmtrain.inference.ensemble import EnsembleModel

        return EnsembleModel(path)
    if (path / artefacts.GBM).is_dir():
        from mmtrain.inference.gbm import GbmModel

        return GbmModel(path / artefacts.GBM)
    from mmtrain.inference.network import load_network

    return load_network(run)
