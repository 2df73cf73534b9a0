"""``predict(cfg)`` is ``mmtrain-predict``: a trained model (``load_model``: a run dir, a checkpoint,
a model=gbm run or an ensemble dir) over a manifest (CSV, TSV, Parquet, JSONL; read in chunks), one
row of predictions per input row out."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from omegaconf import DictConfig

from mmtrain.core import artefacts
from mmtrain.core.errors import ConfigError
from mmtrain.data.files import READERS, locate
from mmtrain.data.manifest import read_chunks, write_table
from mmtrain.data.preflight import BadRows
from mmtrain.inference import load_model
from mmtrain.runtime import devices
from mmtrain.runtime.progress import Progress

log = logging.getLogger(__name__)


def predict(cfg: DictConfig) -> Path:
    """mmtrain-predict: ``cfg.run``'s model over ``cfg.data.path`` in chunks of ``data.chunk_rows``
    rows -> ``cfg.output`` (written once all rows are done; an existing file only with overwrite)."""
    source = Path(str(cfg.data.path)).expanduser()
    output = Path(str(cfg.output)).expanduser()
    if output.suffix.lower() not in READERS:
        raise ConfigError(
            f"output={output}: unknown format '{output.suffix}'. Use .csv, .tsv, .parquet or .jsonl."
        )
    if output.exists() and not cfg.overwrite:
        raise ConfigError(f"output={output} exists: pass overwrite=true to replace it, or another output=...")
    out_dir = Path(cfg.paths.output_dir)
    (out_dir / artefacts.BAD_ROWS).unlink(missing_ok=True)
    model = load_model(cfg.run)
    device = devices.named(cfg.device)
    root = locate(source)[2]
    frames, merged, ids, offset, failing = [], BadRows(0), {}, 0, False
    progress = Progress("Predicting", total=_row_count(source))
    for chunk in read_chunks(source, cfg.data.chunk_rows):
        model.check_columns(chunk, f"data.path={source}")
        bad = model.check(chunk, root)
        chunk_ids = model.ids(chunk, offset)
        for row, problems in bad.rows.items():
            merged.rows[row + offset] = problems
            ids[row + offset] = chunk_ids[row]
        failing = failing or (cfg.data.on_bad_row == "error" and bool(bad.rows))
        if not failing:  # with error, once a bad row is seen the rest is only checked, for the report
            frames.append(
                model.predict(
                    chunk, root, cfg.data.on_bad_row, cfg.data.batch_size, cfg.cache_dir, device, bad, offset
                )
            )
        offset += len(chunk)
        progress.update(len(chunk))
    progress.close()
    if offset == 0:
        raise ConfigError(f"data.path={source}: the manifest has no rows.")
    merged.num_rows = offset
    if merged.rows:
        merged.resolve(cfg.data.on_bad_row, ids, str(out_dir))
    write_table(pd.concat(frames, ignore_index=True), output)
    log.info("Predictions for %d rows: %s", sum(len(f) for f in frames), output)
    return output


def _row_count(path: Path) -> int | None:
    """The number of rows where the format says it cheaply (Parquet's metadata), else None."""
    files, kind, _ = locate(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    return None
