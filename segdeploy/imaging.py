"""Torch-free image helpers shared by data, runtime and CLI: normalisation, palettes, overlays."""

from __future__ import annotations

import numpy as np

from segdeploy.errors import InputError

IGNORE_INDEX = 255


def as_hwc_uint8(image: np.ndarray, channels: int) -> np.ndarray:
    """Accept HxW or HxWxC uint8 and return HxWx`channels`, replicating grey when asked."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image is a {type(image).__name__}", expected="a numpy array")
    if image.dtype != np.uint8:
        raise InputError(f"image has dtype {image.dtype}", expected="uint8 pixels (0-255)",
                         fix="convert with np.clip(img, 0, 255).astype(np.uint8)")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3:
        raise InputError(f"image has shape {image.shape}", expected="HxW or HxWxC")
    if min(image.shape) < 1:
        raise InputError(f"image has shape {image.shape} (no pixels)",
                         expected="height, width and channels of at least 1",
                         fix="check the image was decoded or cropped correctly")
    c = image.shape[2]
    if c == channels:
        return image
    if c == 1 and channels == 3:
        return np.repeat(image, 3, axis=2)
    if c == 4 and channels == 3:
        return image[:, :, :3]
    if c == 3 and channels == 1:
        raise InputError("image has 3 channels but the model takes 1 (grey)",
                         fix="pass a single-channel image (e.g. PIL .convert('L'))")
    raise InputError(f"image has {c} channels", expected=f"{channels} channels")


def normalize(image: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    """HxWxC uint8 -> CxHxW float32, (x / 255 - mean) / std per channel."""
    x = image.astype(np.float32) * np.float32(1.0 / 255.0)
    x -= np.asarray(mean, dtype=np.float32)
    x /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def voc_palette(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (n x 3 uint8): class 0 black, 255 (ignore) white-ish."""
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette[i] = (r, g, b)
    return palette


def colorize(mask: np.ndarray) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 colours (VOC palette)."""
    return voc_palette()[np.asarray(mask, dtype=np.int64) % 256]


def overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the mask's colours over an HxWx{1,3} uint8 image; background pixels stay as is."""
    rgb = as_hwc_uint8(image, 3).astype(np.float32)
    colours = colorize(mask).astype(np.float32)
    fg = (mask > 0)[:, :, None]
    out = np.where(fg, (1 - alpha) * rgb + alpha * colours, rgb)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def save_mask_png(path: str, mask: np.ndarray) -> None:
    """Write class ids as a palette PNG (what VOC and most tools read)."""
    from PIL import Image

    from segdeploy.atomic import atomic_path

    if mask.max(initial=0) > 255:
        raise InputError("mask has class ids above 255", expected="at most 256 classes")
    img = Image.fromarray(mask.astype(np.uint8), mode="P")
    img.putpalette(voc_palette().reshape(-1).tolist())
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
