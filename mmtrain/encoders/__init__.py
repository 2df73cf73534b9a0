"""Encoders: one per modality, all with the contract in :mod:`mmtrain.encoders.base`."""
