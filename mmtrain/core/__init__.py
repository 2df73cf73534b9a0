"""Foundations every layer may import: errors, the registry, reading one cell or media file,
padding and masks, run-dir file names, atomic writes."""
