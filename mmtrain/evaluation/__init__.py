"""Using a trained model on a split: the inference loop, calibration, contributions, robustness."""
