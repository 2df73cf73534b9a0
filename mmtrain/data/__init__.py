"""Datasets (turned into a :class:`~mmtrain.data.table.MultimodalTable`) and the datamodule."""
