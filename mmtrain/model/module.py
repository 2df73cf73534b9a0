"""The LightningModule: builds the model from plain config, and owns losses, metrics, optimiser.

Its hyperparameters are plain containers only (dicts, lists, numbers, strings) so checkpoints load
with ``weights_only=True`` (training/checkpoints.py).
"""

from __future__ import annotations

import lightning as L
import torch

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError
from mmtrain.model.metrics import StageMetrics
from mmtrain.model.network import build_model
from mmtrain.model.optim import OptimSettings, configure, param_groups
from mmtrain.tasks import TASKS, labelled
from mmtrain.tasks.losses import LossSettings

# Classes a checkpoint's config names by a path they have left (old prefix -> new), so old runs still load.
MOVED = {"mmtrain.heads.": "mmtrain.model.heads."}


def moved(node):
    """``node`` (a checkpoint's model config) with every ``_target_`` under a moved path rewritten."""
    if isinstance(node, dict):
        return {
            k: next(
                (
                    new + v[len(old) :]
                    for old, new in MOVED.items()
                    if k == "_target_" and isinstance(v, str) and v.startswith(old)
                ),
                moved(v),
            )
            for k, v in node.items()
        }
    return [moved(v) for v in node] if isinstance(node, list) else node


class LabelledLoss:
    """A task's loss over the rows that have its target (0, still in the graph, when none has)."""

    def __init__(self, loss, task_type: str):
        self.loss, self.task_type = loss, task_type

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        outputs, targets = labelled(self.task_type, outputs, targets)
        return self.loss(outputs, targets) if len(targets) else outputs.sum() * 0.0


class MultimodalModule(L.LightningModule):
    """model_cfg: {"encoder", "fusion", "head", "loss", "optim"} as plain dicts.
    tasks: {task: {"type", "classes", "weights"}} with class/pos weights from the train split.
    data_spec: which columns each modality and target is read from (MultimodalTable.spec), so the
    checkpoint alone can read a new file. ``calibration`` ({task: {...}}, fitted on val after
    training) travels in the checkpoint beside the weights."""

    def __init__(
        self, model_cfg: dict, modalities: list[str], tasks: dict[str, dict], data_spec: dict | None = None
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model_cfg, modalities, tasks)
        self.tasks = tasks
        self.calibration: dict[str, dict] = {}
        loss = LossSettings.of(model_cfg["loss"])
        self.losses = torch.nn.ModuleDict(
            {t: TASKS.get(spec["type"]).loss(spec, loss) for t, spec in tasks.items()}
        )
        # each over the rows that have its target (plain wrappers: the state dict keeps self.losses' keys)
        self.labelled_losses = {t: LabelledLoss(fn, tasks[t]["type"]) for t, fn in self.losses.items()}
        self.val_metrics = StageMetrics(tasks)
        # with model.aux_heads: each modality's unimodal head, on the rows that have the modality
        self.val_aux_metrics = (
            torch.nn.ModuleDict({m: StageMetrics(tasks) for m in modalities})
            if self.model.aux_heads is not None
            else None
        )
        self.test_metrics = StageMetrics(tasks)
        confusion = {t: TASKS.get(spec["type"]).confusion(spec["classes"]) for t, spec in tasks.items()}
        self.test_confusion_metrics = torch.nn.ModuleDict(
            {t: m for t, m in confusion.items() if m is not None}
        )
        self.val_results: dict[str, float] = {}
        self.last_train_step = None  # (ModelOutput, targets) of the latest training step, with aux heads
        self.test_split = "test"  # which test split trainer.test is evaluating: its metrics' prefix
        self.test_results: dict[str, float] = {}
        self.test_confusion: dict[str, list] = {}

    def forward(self, batch: dict):
        return self.model(batch)

    def _loss(self, out, targets: dict) -> torch.Tensor:
        return self.model.loss(out, targets, self.labelled_losses)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.model(batch)
        if out.aux:  # the unimodal heads' outputs, for a balancing callback (balance=ogm_ge)
            self.last_train_step = (out, batch["targets"])
        loss = self._loss(out, batch["targets"])
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"The training loss became {loss.item()} at epoch {self.current_epoch}, step "
                f"{self.global_step}: lower optim.optimizer.lr or set trainer.gradient_clip_val."
            )
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["present"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.model(batch)
        self.log(
            "val/loss",
            self._loss(out, batch["targets"]),
            on_epoch=True,
            batch_size=len(batch["present"]),
            sync_dist=True,
        )
        self.val_metrics.update(out.outputs, batch["targets"], self.calibration)
        for k, (m, metrics) in enumerate((self.val_aux_metrics or {}).items()):
            has = batch["present"][:, k]
            metrics.update(
                {t: out.aux[t][m][has] for t in self.tasks}, {t: y[has] for t, y in batch["targets"].items()}
            )

    def on_validation_epoch_end(self) -> None:
        self.val_results = self.val_metrics.compute("val")
        for m, metrics in (self.val_aux_metrics or {}).items():  # val/<task>/<modality>/<main metric>
            if metrics.rows_seen() < 2:  # the modality is (almost) never present in val: no score to give
                metrics.reset()
                continue
            for key, value in metrics.compute("val").items():
                _, task, metric = key.split("/", 2)
                if metric == TASKS.get(self.tasks[task]["type"]).main_metric:
                    self.val_results[f"val/{task}/{m}/{metric}"] = value
        self.log_dict(self.val_results)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        outputs = self.model(batch).outputs
        self.test_metrics.update(outputs, batch["targets"], self.calibration)
        for task, matrix in self.test_confusion_metrics.items():
            matrix.update(*labelled(self.tasks[task]["type"], outputs[task], batch["targets"][task]))

    def on_test_epoch_end(self) -> None:
        self.test_results = self.test_metrics.compute(self.test_split)
        self.test_confusion = {t: m.compute().tolist() for t, m in self.test_confusion_metrics.items()}
        for matrix in self.test_confusion_metrics.values():
            matrix.reset()
        self.log_dict(self.test_results)

    def configure_optimizers(self):
        settings = OptimSettings.of(self.hparams.model_cfg["optim"])
        pretrained = {m: e for m, e in self.model.encoders.items() if e.pretrained}
        return configure(settings, param_groups(settings, self, pretrained), self.trainer)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # Torch's RNG (dropout) travels with the checkpoint so a resumed run continues exactly.
        checkpoint["torch_rng_state"] = torch.get_rng_state()
        # Frozen pretrained encoders are rebuilt from their files, so their weights (MiniLM: 90 MB)
        # stay out of every checkpoint; on_load_checkpoint puts them back before the strict load.
        for prefix in self.files_backed_prefixes():
            for key in [k for k in checkpoint["state_dict"] if k.startswith(prefix)]:
                del checkpoint["state_dict"][key]
        checkpoint["mmtrain"] = {
            "format": artefacts.CHECKPOINT_FORMAT,
            "model_files": {m: e.fingerprint() for m, e in self.model.encoders.items()},
            "backbones": {  # which named model each encoder is, by the sha256 of its weights
                m: {"name": e.backbone.name, "files": e.backbone.files}
                for m, e in self.model.encoders.items()
                if e.backbone is not None
            },
            "precision": str(getattr(self._trainer, "precision", None) or "32-true"),
        }  # predict runs in it too
        checkpoint["calibration"] = self.calibration

    def files_backed_prefixes(self) -> list[str]:
        return [
            f"model.encoders.{m}."
            for m, e in self.model.encoders.items()
            if e.pretrained and getattr(e, "freeze", False)
        ]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["state_dict"] = self.restore(checkpoint)  # Lightning's strict load follows
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])

    def restore(self, checkpoint: dict) -> dict:
        """The checkpoint's full state dict, with the frozen weights back from their (checked) files;
        sets the calibration. The checkpoint itself is left as it is."""
        self.check_model_files(checkpoint)
        own = self.state_dict()
        state = dict(checkpoint["state_dict"])
        for prefix in self.files_backed_prefixes():
            state.update({k: v for k, v in own.items() if k.startswith(prefix)})
        self.calibration = checkpoint.get("calibration") or {}
        return state

    def check_model_files(self, checkpoint: dict) -> None:
        """The pretrained files an encoder is rebuilt from must be the ones it was trained with: the
        same path with other content would load a different model without a word."""
        saved = checkpoint.get("mmtrain", {}).get("model_files", {})
        for m, encoder in self.model.encoders.items():
            before, now = saved.get(m), encoder.fingerprint()
            if before is not None and now != before:
                raise ConfigError(
                    f"The checkpoint's encoder for '{m}' was trained "
                    f"with the model files at {encoder.model_path}, "
                    f"and those files have changed since (content fingerprint {before[:12]} then, "
                    f"{(now or 'missing')[:12]} now). Put the original files back at that path, or point "
                    f"the encoder's model setting at a copy of them."
                )
