"""Images to a fixed-size graph and its logits back (numpy + Pillow, no torch).

A graph exported with `--static-size HxW` (adaptive pooling to fixed bins, as in PSPNet and
UPerNet, cannot be dynamic) accepts one size only. Padding would change what the pooling
bins see, so images are resized to it (bilinear) and the logits resized back to the
image (bilinear, per class) before the argmax: the same thing the model's own final
upsampling does.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_images(batch: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """N x H x W x C uint8 -> N x size x C uint8 (bilinear per channel)."""
    h, w = size
    if batch.shape[1:3] == (h, w):
        return batch
    out = np.empty((batch.shape[0], h, w, batch.shape[3]), dtype=np.uint8)
    for i, img in enumerate(batch):
        for c in range(img.shape[2]):
            out[i, :, :, c] = np.asarray(Image.fromarray(np.ascontiguousarray(img[:, :, c]))
                                         .resize((w, h), Image.Resampling.BILINEAR))
    return out


def resize_logits(logits: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """N x K x h x w float -> N x K x size float32 (bilinear per class)."""
    h, w = size
    if logits.shape[2:] == (h, w):
        return logits.astype(np.float32, copy=False)
    out = np.empty((*logits.shape[:2], h, w), dtype=np.float32)
    for i in range(logits.shape[0]):
        for k in range(logits.shape[1]):
            plane = np.ascontiguousarray(logits[i, k], dtype=np.float32)
            out[i, k] = np.asarray(Image.fromarray(plane, mode="F")
                                   .resize((w, h), Image.Resampling.BILINEAR))
    return out
