"""What `Segmenter.predict` accepts as one image, and the errors that say how to give it.

Arrays (HxW, HxWxC, any dtype the card's intensity mapping reads), file paths (the one image
decoder: EXIF orientation, 16-bit and float TIFFs) and PIL images. A channel-first array
(C x H x W, or an N x C x H x W normalised batch) is the usual mistake of people coming from
PyTorch: the error points to the right call instead of saying "100 channels".
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from segdeploy.errors import InputError
from segdeploy.imaging import IntensityMapping, as_hwc_uint8

#: an axis this small holding the channels looks channel-first, not an image side
_CHANNEL_AXIS = 4


def as_array(image: Any, channels: int) -> np.ndarray:
    """A path or PIL image read into pixels as stored; an array as it is; else InputError."""
    if isinstance(image, np.ndarray):
        return image
    if isinstance(image, str | os.PathLike):
        from segdeploy.imaging import read_image

        return read_image(image, grey=channels == 1)
    if type(image).__module__.startswith("PIL."):
        # as the decoder reads files: grey for a 1-channel model, palette and others to RGB
        if channels == 1 and image.mode not in ("L", "I", "I;16", "F"):
            image = image.convert("L")
        elif image.mode in ("P", "CMYK", "YCbCr", "LAB", "HSV", "LA", "PA", "1"):
            image = image.convert("RGB")
        return np.asarray(image)
    raise InputError(f"image is a {type(image).__name__}",
                     expected="a numpy array (HxWxC or HxW), a file path or a PIL image",
                     fix="read it with PIL.Image.open(path) or pass the path itself")


def check_layout(image: np.ndarray, channels: int) -> None:
    """Refuse channel-first layouts with the call that takes them."""
    if image.ndim == 3 and image.shape[0] == channels and image.shape[-1] > _CHANNEL_AXIS \
            and image.shape[1] > _CHANNEL_AXIS:
        raise InputError(f"image has shape {image.shape}: channels first (C x H x W)",
                         expected="H x W x C (channels last), as images are decoded",
                         fix="pass image.transpose(1, 2, 0); for a normalised float tensor "
                             "use seg.logits(x[None])")
    if image.ndim == 4 and image.shape[1] == channels and image.shape[-1] > _CHANNEL_AXIS \
            and np.issubdtype(image.dtype, np.floating):
        raise InputError(f"batch has shape {image.shape}: a normalised N x C x H x W tensor",
                         expected="uint8 N x H x W x C images for predict()",
                         fix="use seg.logits(batch) for normalised NCHW input, or pass the "
                             "images as decoded")


def as_image(image: Any, channels: int, intensity: IntensityMapping) -> np.ndarray:
    """One image for the model: HxWx`channels` uint8, the card's intensity mapping applied."""
    pixels = as_array(image, channels)
    if pixels.ndim == 4:
        check_layout(pixels, channels)
        raise InputError(f"image has shape {pixels.shape}",
                         expected="one HxWxC or HxW image (use predict() for batches)")
    check_layout(pixels, channels)
    return as_hwc_uint8(intensity.apply(pixels), channels)


#: a share of pixels outside the card's window above which predict says so (once)
CLIP_NOTICE = 0.05


class ClippingNotice(UserWarning):
    """Many pixels fall outside the window the model was trained with (said once)."""


def clipped_share(pixels: np.ndarray, intensity: IntensityMapping) -> float:
    """Share of the pixels a window mapping clips (0 for uint8 or per-image mappings): a
    16-bit image fed to a model trained on 8-bit data clips nearly everything to white."""
    if intensity.kind != "window" or pixels.dtype == np.uint8 or pixels.size == 0:
        return 0.0
    low, high = float(intensity.low), float(intensity.high)  # type: ignore[arg-type]
    # compared in the image's own dtype: no float copy of every frame on the predict path
    outside = np.count_nonzero(pixels < low) + np.count_nonzero(pixels > high)
    counted = pixels.size
    if pixels.dtype.kind == "f":  # NaN compares False both ways; only finite pixels count
        counted = int(np.count_nonzero(np.isfinite(pixels)))
        outside -= int(np.count_nonzero(np.isneginf(pixels)) + np.count_nonzero(
            np.isposinf(pixels)))
    return float(outside) / max(counted, 1)
