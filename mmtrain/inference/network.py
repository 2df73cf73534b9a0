"""A trained neural run (a run dir's best.ckpt, or a checkpoint file) as a model that reads new rows
the way training did: the checkpoint carries the column mapping, the fitted preprocessing, the encoders
and the calibration."""

from __future__ import annotations

from pathlib import Path

from mmtrain.core.errors import ConfigError, summary
from mmtrain.data.datamodule import LoaderSettings, MultimodalDataModule
from mmtrain.data.feature_store import decoded_per_batch, featurizers
from mmtrain.evaluation import analysis
from mmtrain.inference.rows import RowReader
from mmtrain.model.module import MultimodalModule
from mmtrain.training import checkpoints


def load_network(run) -> TrainedModel:
    """The trained network of a run dir or checkpoint file, on the CPU, ready to predict."""
    path = checkpoints.resolve_run(run)
    try:
        module = checkpoints.load_module(path)
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(
            f"run={run}: {path} is not a readable mmtrain checkpoint ({summary(err)}). "
            f"It may be truncated; a run dir "
            f"keeps last.ckpt beside best.ckpt."
        ) from err
    return TrainedModel(module, path)


class TrainedModel(RowReader):
    """A trained module with what it needs to read new data: ``predict(frame)`` -> DataFrame."""

    def __init__(self, module: MultimodalModule, path: Path):
        self.module, self.path = module, Path(path)
        hp = module.hparams
        preprocessing = {
            m: e["preprocessing"] for m, e in hp["model_cfg"]["encoder"].items() if "preprocessing" in e
        }
        super().__init__(hp["data_spec"], hp["tasks"], list(hp["modalities"]), preprocessing)

    @property
    def precision(self) -> str:
        """The training precision (kept in the checkpoint): featurizing and predicting run in it too."""
        return getattr(self.module, "precision", "32-true")

    @property
    def calibration(self) -> dict:
        return self.module.calibration

    def datamodule(
        self, table, batch_size: int = 64, cache_dir=None, test_split: str = "predict", device="cpu"
    ):
        encoders = self.module.model.encoders
        dm = MultimodalDataModule(
            table,
            self.modalities,
            list(table.tasks),
            featurizers(encoders, cache_dir, device, self.precision),
            {m: encoders[m].empty_input() for m in self.modalities},
            # rows that fit one batch (a server's call): workers would only add a fork per call
            LoaderSettings(batch_size, num_workers=0 if len(table) <= batch_size else "auto"),
            test_split=test_split,
            per_batch=decoded_per_batch(encoders, table, self.modalities),
        )
        dm.setup()
        return dm

    def keep_resident(self) -> None:
        for encoder in self.module.model.encoders.values():
            encoder.resident = True

    def outputs(self, table, batch_size: int = 64, cache_dir=None, device="cpu"):
        """(outputs {task: [N, K]}, present [N, M]) of the network over the table's rows."""
        dm = self.datamodule(table, batch_size, cache_dir, device=device)
        outputs, _, present = analysis.run(
            self.module.model, dm.loader("predict", shard=False), device, precision=self.precision
        )
        return outputs[None], present
