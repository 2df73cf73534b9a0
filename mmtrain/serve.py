"""``mmtrain-serve run=<run dir>``: a trained model (a run, a checkpoint, a model=gbm run or an ensemble)
behind HTTP on ``host:port`` (serving/app.py: /predict, /health, /metadata, /metrics), predicting in the
precision and with the preprocessing saved with it."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from mmtrain.runtime import devices

log = logging.getLogger(__name__)


def serve(cfg: DictConfig) -> None:
    from importlib.metadata import version

    import uvicorn

    from mmtrain.serving.app import ServeSettings, build_app

    # every request's rows are checked and read like a file's: their per-call INFO lines are noise here
    logging.getLogger("mmtrain.data").setLevel(logging.WARNING)
    settings = ServeSettings(**OmegaConf.to_container(cfg.serve, resolve=True))
    app = build_app(cfg.run, settings, devices.named(cfg.device), version("mmtrain"))
    log.info(
        "mmtrain-serve: %s on http://%s:%d (POST /predict, GET /health /metadata /metrics)",
        cfg.run,
        cfg.host,
        cfg.port,
    )
    uvicorn.run(app, host=cfg.host, port=int(cfg.port), log_level="warning", access_log=False)
