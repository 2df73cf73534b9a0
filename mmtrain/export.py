"""mmtrain-export: the trained network from featurized inputs (the encoders' trainable part, fusion,
heads) as ONNX or TorchScript, with signature.json listing every input and output with its dtype and
shape (batch and sequence axes dynamic) and how each input is featurized. Featurizing itself
(tokenizer, log-mel, image transform, tabular preprocessing) stays the Python ``load_model`` path.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError, summary
from mmtrain.tasks import TASKS

log = logging.getLogger(__name__)
FORMATS = {"onnx": "model.onnx", "torchscript": "model.pt"}
DTYPES = {"float32": torch.float32, "int64": torch.int64, "bool": torch.bool}


class ExportedNetwork(nn.Module):
    """(x_m, mask_m for each modality m in order, present [B, M]) -> for each task its raw outputs,
    then, for a classification task, its calibrated probabilities."""

    def __init__(self, module):
        super().__init__()
        self.model, self.tasks, self.calibration = module.model, module.tasks, module.calibration
        self.modalities = list(module.model.modalities)

    def forward(self, *inputs):
        n = len(self.modalities)
        batch = {m: (inputs[2 * i], inputs[2 * i + 1]) for i, m in enumerate(self.modalities)}
        outputs = self.model.fuse(self.model.encode(batch), inputs[2 * n]).outputs
        result = []
        for task, spec in self.tasks.items():
            result.append(outputs[task])
            probs = TASKS.get(spec["type"]).probabilities(outputs[task], self.calibration.get(task))
            if probs is not None:
                result.append(probs)
        return tuple(result)


def signature(module) -> dict:
    """The inputs (name, dtype, shape with named dynamic axes, how it is featurized) and outputs."""
    inputs = []
    for m in module.model.modalities:
        spec = module.model.encoders[m].input_spec()
        axes = [f"{m}_length" if d == "length" else d for d in spec["shape"]]
        x = {"name": f"{m}_x", "dtype": spec["dtype"], "shape": axes, "featurize": spec["what"]}
        fitted = module.hparams.model_cfg["encoder"][m].get("preprocessing")
        inputs.append(
            {**x, "preprocessing": fitted} if fitted else x
        )  # the values: means, stds, vocabularies
        inputs.append(
            {
                "name": f"{m}_mask",
                "dtype": "bool",
                "shape": axes[:2],
                "featurize": "True where the token/frame/slot is real; a row without the modality is "
                "all False",
            }
        )
    inputs.append(
        {
            "name": "present",
            "dtype": "bool",
            "shape": ["batch", len(module.model.modalities)],
            "featurize": f"which of {list(module.model.modalities)} each row has",
        }
    )
    outputs = []
    for task, spec in module.tasks.items():
        kind = TASKS.get(spec["type"])
        width = kind.num_outputs(spec["classes"])
        outputs.append(
            {
                "name": task,
                "dtype": "float32",
                "shape": ["batch", width],
                "what": "logits" if spec["classes"] else "predicted value",
            }
        )
        if kind.probabilities(torch.zeros(1, width), None) is not None:
            outputs.append(
                {
                    "name": f"prob_{task}",
                    "dtype": "float32",
                    "shape": ["batch", width],
                    "what": "calibrated probabilities (the saved temperature applied)",
                }
            )
    return {
        "inputs": inputs,
        "outputs": outputs,
        "tasks": {t: {"type": s["type"], "classes": s["classes"]} for t, s in module.tasks.items()},
        "calibration": module.calibration,
        "data_spec": module.hparams.data_spec,
        "note": "Featurize each row as the `featurize` entries say (mmtrain.load_model(run) does it in "
        "Python), "
        "pad to the batch's longest, and pass the inputs in this order.",
    }


def example_inputs(sig: dict, batch: int = 3, length: int = 37) -> tuple:
    """Zeros of every input's shape (zeros are valid token ids, pixels and category codes)."""
    out = []
    for spec in sig["inputs"]:
        shape = [batch if d == "batch" else length if isinstance(d, str) else d for d in spec["shape"]]
        out.append(
            torch.ones(shape, dtype=torch.bool)
            if spec["dtype"] == "bool"
            else torch.zeros(shape, dtype=DTYPES[spec["dtype"]])
        )
    return tuple(out)


def write(module, fmt: str, folder: Path, opset: int = 18) -> Path:
    """The network as ``fmt`` in ``folder`` (model.onnx or model.pt) with signature.json."""
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt} is not known: use {' or '.join(FORMATS)}.")
    folder.mkdir(parents=True, exist_ok=True)
    net = ExportedNetwork(module).eval()
    sig = signature(module)
    args = example_inputs(sig)
    path = folder / FORMATS[fmt]
    try:
        _export(net, args, sig, fmt, path, opset)
    except Exception as err:
        raise ConfigError(
            f"format={fmt}: {_culprit(module, fmt, opset)} cannot "
            f"be exported ({summary(err, 300)}). Pick another "
            f"encoder or fusion for that modality, or the other format."
        ) from err
    (folder / artefacts.SIGNATURE).write_text(
        json.dumps({"format": fmt, "file": path.name, **sig}, indent=2) + "\n"
    )
    log.info("Exported %s to %s (signature.json beside it)", fmt, path)
    return path


def _export(net: nn.Module, args: tuple, sig: dict, fmt: str, path, opset: int) -> None:
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values used as constants
        if fmt == "torchscript":
            traced = torch.jit.trace(net, args, check_trace=False)
            torch.jit.save(traced, path)
            return
        names = [i["name"] for i in sig["inputs"]]
        outputs = [o["name"] for o in sig["outputs"]]
        # AUTO: every named axis dynamic, with the ranges torch.export finds (checked at 1 too, in tests).
        shapes = tuple(
            {k: torch.export.Dim.AUTO for k, d in enumerate(s["shape"]) if isinstance(d, str)}
            for s in sig["inputs"]
        )
        for name in ("onnx_ir", "onnxscript", "torch.onnx"):
            logging.getLogger(name).setLevel(logging.ERROR)
        torch.onnx.export(
            net,
            args,
            path,
            input_names=names,
            output_names=outputs,
            dynamic_shapes=(shapes,),
            opset_version=opset,
            dynamo=True,
            verbose=False,
            external_data=False,
        )


def _culprit(module, fmt: str, opset: int) -> str:
    """Which part fails to export on its own: an encoder (named by modality), else fusion and heads."""
    sig = signature(module)
    args = example_inputs(sig)
    for i, m in enumerate(module.model.modalities):
        encoder = module.model.encoders[m]

        class Alone(nn.Module):
            def __init__(self, encoder):
                super().__init__()
                self.encoder = encoder

            def forward(self, x, mask):
                return self.encoder(x, mask).pooled

        try:
            one = {
                "inputs": sig["inputs"][2 * i : 2 * i + 2],
                "outputs": [{"name": "pooled", "shape": ["batch", 1]}],
            }
            _export(Alone(encoder).eval(), args[2 * i : 2 * i + 2], one, fmt, io.BytesIO(), opset)
        except Exception:
            return f"the encoder of modality '{m}' ({type(encoder).__name__}, encoder.{m}._target_)"
    return f"the fusion ({type(module.model.fusion).__name__}) or a head"


def check(module, folder: Path, inputs: tuple) -> float:
    """max |Δ| between the exported network (onnxruntime or TorchScript) and PyTorch on ``inputs``."""
    net = ExportedNetwork(module).eval()
    with torch.no_grad():
        expected = [o.numpy() for o in net(*inputs)]
    sig = json.loads((folder / artefacts.SIGNATURE).read_text())
    if sig["format"] == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(folder / sig["file"]), providers=["CPUExecutionProvider"])
        feed = {s["name"]: x.numpy() for s, x in zip(sig["inputs"], inputs)}
        got = session.run([o["name"] for o in sig["outputs"]], feed)
    else:
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", FutureWarning
            )  # torch.jit is deprecated in favour of torch.export
            got = [o.numpy() for o in torch.jit.load(str(folder / sig["file"]))(*inputs)]
    return max(float(abs(a - b).max()) for a, b in zip(expected, got))


def export(cfg: DictConfig) -> Path:
    """mmtrain-export run=<run dir or .ckpt> format=onnx|torchscript output=<folder>."""
    from mmtrain.inference import load_model

    if cfg.format not in FORMATS:
        raise ConfigError(f"format={cfg.format} is not known: use {' or '.join(FORMATS)}.")
    folder = Path(str(cfg.output)).expanduser()
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())) and not cfg.overwrite:
        raise ConfigError(
            f"output={folder} exists and is not empty: pass overwrite=true to write into it, or "
            f"another output=<folder>."
        )
    model = load_model(cfg.run)
    if hasattr(model, "export_refusal"):  # an ensemble or boosted trees: not one network
        raise model.export_refusal()
    path = write(model.module, cfg.format, folder, cfg.opset)
    diff = check(model.module, folder, example_inputs(signature(model.module), batch=2, length=5))
    log.info("Exported network vs PyTorch on example inputs: max |diff| = %.2e", diff)
    return path
