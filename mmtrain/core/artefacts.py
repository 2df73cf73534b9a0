"""What a run dir holds: every file name one command writes and another reads, spelt once here
(Ludwig keeps its in one module too), and the checkpoint format those files carry."""

from __future__ import annotations

CHECKPOINT_FORMAT = 2  # 2: the data spec, model-file fingerprints, calibration and precision travel in it

CONFIG = "config.yaml"  # the resolved config
METRICS = "metrics.json"  # flat <split>/<task>/<metric> of the best checkpoint
METRICS_CSV = "metrics.csv"  # per epoch (Lightning's CSV logger)
CURVES = "curves.png"
RUN_INFO = "run.json"  # the facts report.md states
REPORT = "report.md"
FAILED = "failed.json"  # why a run has no metrics.json
PRUNED = "pruned.json"  # a sweep trial the study's pruner stopped early (epoch, monitored value)
OPTIMIZATION_RESULTS = "optimization_results.yaml"  # a sweep driver's dir: the study's best trial
ERROR_LOG = "error.log"  # the traceback of a bug
BAD_ROWS = "bad_rows.csv"
CV = "cv.csv"
CHECKPOINTS = "checkpoints"
BEST = "best.ckpt"
LAST = "last.ckpt"
PER_CLASS = "per_class.csv"
RELIABILITY = "reliability"  # .csv and .png
CONTRIBUTION = "contribution"  # .csv and .png
FUSION_WEIGHTS = "fusion_weights"  # .csv and .png
ROBUSTNESS = "robustness"  # .csv and .png
IMPORTANCE = "importance"  # .csv and .png: model=gbm feature importance (gain) per feature and modality
PREDICTIONS = "predictions"  # <split>.parquet: val and test predictions, what ensembling reads
PREDICTED_TASKS = "tasks.json"  # in predictions/: the tasks, monitored metric and targets
ENSEMBLE = "ensemble.json"  # an ensemble dir: its members, method and weights
DISAGREEMENT = "disagreement"  # an ensemble dir: _<task>.csv and .png, members deciding differently
MEMBERS = "members"  # an ensemble dir: each member's model, packed (member_<i>/)
GBM = "gbm"  # a model=gbm run: the boosted trees and what they read (gbm/model.json, gbm/<task>.txt)
SIGNATURE = "signature.json"  # mmtrain-export's description of the exported network
