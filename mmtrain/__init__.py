"""mmtrain: config-driven training of multimodal models."""

import os

# Runs are offline by default: no hub look-ups (which hang ~46 s without a network) unless the
# user sets HF_HUB_OFFLINE=0 themselves. Set before transformers/timm are imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", os.environ["HF_HUB_OFFLINE"])


def _register_resolvers() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("mmtrain.keys"):
        # ${mmtrain.keys:${data.modalities}} -> the names declared there, as a list.
        OmegaConf.register_new_resolver("mmtrain.keys", lambda node: list(node))


_register_resolvers()
