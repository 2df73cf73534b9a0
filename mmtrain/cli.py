"""The commands: ``mmtrain`` (train), ``mmtrain-predict``, ``mmtrain-evaluate`` and ``mmtrain-export``,
each a thin ``@hydra.main`` over a plain function with its own primary config in conf/. Heavy
imports wait until a run needs them so ``--help`` and ``--cfg job`` stay fast."""

from __future__ import annotations

import json
import logging
import math
import sys
import traceback
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from mmtrain.errors import ConfigError

log = logging.getLogger("mmtrain")
# Maps a user fills with their own names (data.targets.label.column=label): Hydra only adds a key
# that is not in the config yet with "+", and only overrides an existing one without it; "++" does both.
OPEN_MAPS = ("data.modalities.", "data.targets.", "encoder_for.")


def main() -> None:
    sys.argv = [sys.argv[0]] + [f"++{a}" if a.startswith(OPEN_MAPS) else a for a in sys.argv[1:]]
    train_job()


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="train")
def train_job(cfg: DictConfig) -> float | None:
    """Runs one training job; returns ``optimized_metric`` from metrics.json (for sweepers).

    A failing run (bad config, NaN loss, any exception) writes ``failed.json`` in its run dir; in a
    multirun it then returns NaN, so the sweep goes on and the leaderboard lists it.
    """
    from mmtrain.checks import validate, validate_launch
    from mmtrain.logs import setup

    setup()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        validate_launch(cfg, multirun, HydraConfig.get().launcher.get("_target_", ""))
    except ConfigError as err:  # a wrong way to launch stops everything, sweep included
        print(f"mmtrain: error: {err}", file=sys.stderr)
        sys.exit(2)
    try:
        validate(cfg)
        from mmtrain.train import run

        metrics = run(cfg)
    except Exception as err:
        record_failure(Path(cfg.paths.output_dir), err)
        if not multirun:
            if isinstance(err, ConfigError):
                to_log_file(f"mmtrain: error: {err}")
                print(f"mmtrain: error: {err}", file=sys.stderr)
                sys.exit(2)
            raise
        log.error("Job failed (recorded in %s/failed.json); the sweep goes on: %s", cfg.paths.output_dir, err)
        return math.nan
    return metrics.get(cfg.optimized_metric, math.nan)


def predict_main() -> None:
    predict_job()


def evaluate_main() -> None:
    evaluate_job()


def export_main() -> None:
    export_job()


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


def command(cfg: DictConfig, config_name: str, function) -> None:
    """Run ``function(cfg)`` after the config checks; a bad value or input: one paragraph, exit 2."""
    from mmtrain.checks import validate_command
    from mmtrain.logs import setup

    setup()
    try:
        validate_command(cfg, config_name)
        function(cfg)
    except ConfigError as err:
        to_log_file(f"mmtrain-{config_name}: error: {err}")
        print(f"mmtrain-{config_name}: error: {err}", file=sys.stderr)
        sys.exit(2)


def to_log_file(message: str) -> None:
    """Into the run dir's cli.log only (the console gets the message once, on stderr)."""
    record = logging.LogRecord("mmtrain", logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.emit(record)


def record_failure(out_dir: Path, err: Exception) -> None:
    """failed.json in the run dir says why it has no metrics.json (mmtrain-report lists it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "failed.json").write_text(json.dumps(
        {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
