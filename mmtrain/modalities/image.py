"""Image files (PNG, JPEG, ...), resized and normalised by the encoder."""

from __future__ import annotations

from mmtrain.core.media import check_image
from mmtrain.modalities import MODALITIES
from mmtrain.modalities._files import FileModality


@MODALITIES.register
class Image(FileModality):
    name = "image"
    infer_order = 40
    suffixes = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")

    def check_file(self, path):
        return check_image(path)
