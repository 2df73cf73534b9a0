"""The ``mmtrain`` command: the only ``@hydra.main``. Heavy imports wait until a run needs them so
``mmtrain --help`` and ``--cfg job`` stay fast."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from mmtrain.errors import ConfigError


@hydra.main(version_base="1.3", config_path="pkg://mmtrain.conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Runs one training job; returns the optimized metric (for sweepers such as Optuna)."""
    from mmtrain.checks import validate

    try:
        validate(cfg)
        from mmtrain.train import run

        metrics = run(cfg)
    except ConfigError as err:
        print(f"mmtrain: error: {err}", file=sys.stderr)
        sys.exit(2)
    return metrics.get(cfg.optimized_metric)


if __name__ == "__main__":
    main()
