"""mmtrain's Optuna sweeper for Hydra (hydra/sweeper=mmtrain_optuna): a study shared by many drivers
in an RDB or journal file, with pruning and failure handling. The logic is mmtrain/sweeping/study.py."""
