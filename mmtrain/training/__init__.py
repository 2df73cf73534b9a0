"""Training a model: checkpoint averaging, callbacks, modality balance."""
