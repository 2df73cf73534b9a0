"""The commands: ``mmtrain`` (train), ``mmtrain-predict``, ``mmtrain-evaluate``, ``mmtrain-export``,
``mmtrain-ensemble``, ``mmtrain-serve`` and ``mmtrain-models``, each a thin ``@hydra.main`` over a plain
function with its own primary config in mmtrain/conf/. Heavy imports wait until a run needs them so
``--help`` and ``--cfg job`` stay fast."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError, explained, internal_error, summary

log = logging.getLogger("mmtrain")
# Maps a user fills with their own names (data.targets.label.column=label): Hydra only adds a key
# that is not in the config yet with "+", and only overrides an existing one without it; "++" does both.
OPEN_MAPS = ("data.modalities.", "data.targets.", "encoder_for.")


def offline() -> None:
    """The commands run offline by default: no hub look-ups (which hang ~46 s without a network)
    unless the user sets HF_HUB_OFFLINE=0 themselves; off a terminal, no library progress bars. Set
    before transformers/timm are imported; ``import mmtrain`` itself changes no environment variable."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])
    if not sys.stderr.isatty():  # transformers' "Loading weights" bar: a line per model load in a log file
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def main() -> None:
    offline()
    sys.argv = [sys.argv[0]] + [f"++{a}" if a.startswith(OPEN_MAPS) else a for a in sys.argv[1:]]
    precheck("mmtrain", "train")
    train_job()


def precheck(program: str, config_name: str) -> None:
    """A misspelt key on the command line: one paragraph with a did-you-mean, before Hydra runs."""
    from mmtrain.config.validate import check_overrides

    try:
        check_overrides(config_name, sys.argv[1:], OPEN_MAPS)
    except ConfigError as err:
        print(f"{program}: error: {err}", file=sys.stderr)
        sys.exit(2)


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="train")
def train_job(cfg: DictConfig) -> float | None:
    """Runs one training job; returns ``optimized_metric`` from metrics.json (for sweepers).

    A failing run (bad config, NaN loss, any exception) writes ``failed.json`` in its run dir; in a
    multirun it then returns NaN, so the sweep goes on and the leaderboard lists it.
    """
    from mmtrain.config.validate import validate, validate_launch
    from mmtrain.runtime.logs import setup

    setup()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    out_dir = Path(cfg.paths.output_dir)
    try:
        validate_launch(cfg, multirun, HydraConfig.get().launcher.get("_target_", ""))
    except ConfigError as err:  # a wrong way to launch stops everything, sweep included
        print(f"mmtrain: error: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        validate(cfg)
        from mmtrain.train import run

        setup()  # again: importing Lightning gave it its own console handler (each line printed twice)
        metrics = run(cfg, validated=True)
    except Exception as err:  # noqa: BLE001  (the command's boundary: every failure is recorded and said)
        record_failure(out_dir, err)
        if not multirun:
            fail("mmtrain", err, out_dir)
        log.error("Job failed (recorded in %s/failed.json); the sweep goes on: %s", out_dir, summary(err))
        return math.nan
    return metrics.get(cfg.optimized_metric, math.nan)


def predict_main() -> None:
    offline()
    precheck("mmtrain-predict", "predict")
    predict_job()


def evaluate_main() -> None:
    offline()
    precheck("mmtrain-evaluate", "evaluate")
    evaluate_job()


def export_main() -> None:
    offline()
    precheck("mmtrain-export", "export")
    export_job()


def serve_main() -> None:
    offline()
    precheck("mmtrain-serve", "serve")
    serve_job()


def models_main() -> None:
    """``mmtrain-models get mpnet whisper_base`` reads as ``action=get names=[mpnet,whisper_base]``."""
    args = sys.argv[1:]
    count = next((i for i, a in enumerate(args) if "=" in a or a.startswith("-")), len(args))
    words, rest = args[:count], args[count:]  # the leading words; Hydra's flags and their values follow
    if words:
        sys.argv = [sys.argv[0], f"action={words[0]}", f"names=[{','.join(words[1:])}]", *rest]
    precheck("mmtrain-models", "models")
    models_job()


def ensemble_main() -> None:
    offline()
    precheck("mmtrain-ensemble", "ensemble")
    ensemble_job()


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="predict")
def predict_job(cfg: DictConfig) -> None:
    from mmtrain.predict import predict

    command(cfg, "predict", predict)


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="evaluate")
def evaluate_job(cfg: DictConfig) -> None:
    from mmtrain.evaluate import evaluate

    command(cfg, "evaluate", evaluate)


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="export")
def export_job(cfg: DictConfig) -> None:
    from mmtrain.export import export

    command(cfg, "export", export)


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="ensemble")
def ensemble_job(cfg: DictConfig) -> None:
    from mmtrain.ensemble import ensemble

    command(cfg, "ensemble", ensemble)


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="serve")
def serve_job(cfg: DictConfig) -> None:
    from mmtrain.serve import serve

    command(cfg, "serve", serve)


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="models")
def models_job(cfg: DictConfig) -> None:
    from mmtrain.models import models

    command(cfg, "models", models)


def command(cfg: DictConfig, config_name: str, function) -> None:
    """Run ``function(cfg)`` after the config checks; a bad value or input: one paragraph, exit 2."""
    from mmtrain.config.validate import validate_command
    from mmtrain.runtime.logs import setup

    setup()
    try:
        validate_command(cfg, config_name)
        function(cfg)
    except Exception as err:  # noqa: BLE001  (the command's boundary: every failure is said, see fail)
        fail(f"mmtrain-{config_name}", err, Path(cfg.paths.output_dir))


def fail(program: str, err: Exception, out_dir: Path) -> None:
    """Say what went wrong in one paragraph (on stderr and in the run dir's log) and exit: 2 for a
    problem the user can fix (the message says how), 1 for a bug, whose traceback goes to error.log."""
    message = explained(err)
    if message is None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / artefacts.ERROR_LOG).write_text("".join(traceback.format_exception(err)))
        message, code = internal_error(err, out_dir / artefacts.ERROR_LOG), 1
    else:
        message, code = f"error: {message}", 2
    to_log_file(f"{program}: {message}")
    print(f"{program}: {message}", file=sys.stderr)
    sys.exit(code)


def to_log_file(message: str) -> None:
    """Into the run dir's cli.log only (the console gets the message once, on stderr)."""
    record = logging.LogRecord("mmtrain", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(record)


def record_failure(out_dir: Path, err: Exception) -> None:
    """failed.json in the run dir says why it has no metrics.json (mmtrain-report lists it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / artefacts.FAILED).write_text(
        json.dumps(
            {"error": f"{type(err).__name__}: {err}", "traceback": "".join(traceback.format_exception(err))},
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
