"""The network (encoders -> fusion -> heads), the LightningModule, heads, metrics, optimiser."""
