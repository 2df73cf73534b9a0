"""Sweeps that scale out: an Optuna study shared by many drivers (study.py, the Hydra sweeper behind
hydra/sweeper=mmtrain_optuna) and each job's report to its trial, which lets the study prune it
(pruning.py)."""
