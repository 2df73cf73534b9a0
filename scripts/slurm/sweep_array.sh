#!/usr/bin/env bash
# A Slurm job array of sweep drivers sharing one Optuna study: each array task is one driver
# (`mmtrain -m ... hydra.sweeper.n_jobs=1`) with its own sweep dir, all against one storage and study name.
#   sbatch --array=0-7 scripts/slurm/sweep_array.sh hparams_search=fusion_optuna study=fusion_v1 \
#       storage=postgresql://user@dbhost/optuna [trials=5] [any other mmtrain overrides]
#   mmtrain-report multirun/fusion_v1          # one leaderboard over every driver's trials, and the study's best
# storage: postgresql://... (many drivers), sqlite:////abs/path.db (a few, one machine) or journal:/abs/file.log
# (a shared file system without a database). Resubmitting the same array resumes the study: each driver finishes
# its own trials and re-runs the one it was stopped in. Frozen encoders' features are computed once, in a feature
# store on shared storage (MMTRAIN_CACHE_DIR, default ./.feature_store beside the sweep dirs).
#SBATCH --job-name=mmtrain-sweep
#SBATCH --cpus-per-task=4
#SBATCH --output=slurm-%A_%a.out
set -euo pipefail
study="" storage="" trials=5 rest=()
for arg in "$@"; do
  case "$arg" in
    study=*) study="${arg#study=}" ;;
    storage=*) storage="${arg#storage=}" ;;
    trials=*) trials="${arg#trials=}" ;;
    *) rest+=("$arg") ;;
  esac
done
if [[ -z "$study" || -z "$storage" ]]; then
  echo "sweep_array.sh: give study=<name> and storage=<postgresql://... | sqlite:////abs.db | journal:/abs.log>" >&2
  exit 2
fi
task="${SLURM_ARRAY_TASK_ID:-0}"
export MMTRAIN_CACHE_DIR="${MMTRAIN_CACHE_DIR:-$PWD/.feature_store}"
exec "${MMTRAIN:-mmtrain}" -m "${rest[@]}" \
  "hydra.sweeper.storage=$storage" "hydra.sweeper.study_name=$study" \
  hydra.sweeper.n_jobs=1 "hydra.sweeper.n_trials=$trials" \
  "hydra.sweep.dir=multirun/$study/driver_$task"
