"""Pure helpers of Segmenter: which input size an image needs, padding, feeding, argmax.

A model constrains its input (size_multiple, min_size, a TensorRT engine's profile boxes);
an image of any size is padded by reflection to the smallest size that satisfies all of them,
and the prediction is cropped back. Output pixel r of a "valid" model sits over input pixel
r + (H_in - H_out) // 2 (its output is centred on the sizes it pools evenly, which
Segmenter keeps to); "same" models have that offset 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from segdeploy.errors import InputError
from segdeploy.geometry import round_up
from segdeploy.imaging import normalize
from segdeploy.runtime.runner import TensorSpec


@dataclass(frozen=True)
class SizeBox:
    """Allowed batch, height and width of one engine profile (None: unbounded)."""

    batch: tuple[int, int | None] = (1, None)
    height: tuple[int, int | None] = (1, None)
    width: tuple[int, int | None] = (1, None)

    def describe(self) -> str:
        def rng(lo: int, hi: int | None) -> str:
            return f"{lo}-{hi}" if hi is not None else f">={lo}"
        return (f"batch {rng(*self.batch)}, height {rng(*self.height)}, "
                f"width {rng(*self.width)}")


def size_boxes(spec: TensorSpec, layout: str) -> list[SizeBox]:
    """SizeBoxes of an input spec: its engine profiles, else its fixed/dynamic dims."""
    n_ax, h_ax, w_ax = (0, 2, 3) if layout == "NCHW" else (0, 1, 2)
    if spec.profiles:
        return [SizeBox((lo[n_ax], hi[n_ax]), (lo[h_ax], hi[h_ax]), (lo[w_ax], hi[w_ax]))
                for lo, _, hi in spec.profiles]

    def dim(axis: int) -> tuple[int, int | None]:
        d = spec.shape[axis]
        return (d, d) if d else (1, None)

    return [SizeBox(dim(n_ax), dim(h_ax), dim(w_ax))]


@dataclass(frozen=True)
class PadLayout:
    """Reflection padding of an image to the model input, and the profile box it fits."""

    top: int
    bottom: int
    left: int
    right: int
    box: SizeBox

    def input_size(self, h: int, w: int) -> tuple[int, int]:
        return h + self.top + self.bottom, w + self.left + self.right


def choose_padding(h: int, w: int, *, boxes: Sequence[SizeBox], multiple: int = 1,
                 min_size: int = 1, margin: tuple[int, int] = (0, 0), base: int = 0) -> PadLayout:
    """The smallest padding that makes h x w (plus `margin` of context on each side for
    "valid" models) a size base + k * `multiple`, at least `min_size`, inside some profile box.

    `base` is 0 for "same" models; a valid U-Net's output is exactly centred only on the
    lattice min_size + k * stride (every pooling even), so it passes base=min_size."""
    multiple = max(int(multiple), 1)
    my, mx = margin
    for box in boxes:
        size: list[int] = []
        for need, (lo, hi) in ((h + 2 * my, box.height), (w + 2 * mx, box.width)):
            target = base + round_up(max(need, min_size, lo) - base, multiple)
            if hi is not None and target > hi:
                break
            size.append(target)
        else:
            return PadLayout(my, size[0] - h - my, mx, size[1] - w - mx, box)
    limits = "; ".join(b.describe() for b in boxes)
    raise InputError(
        f"a {h}x{w} image needs a model input of at least "
        f"{round_up(max(h + 2 * my, min_size), multiple)}x"
        f"{round_up(max(w + 2 * mx, min_size), multiple)} pixels, outside what the model "
        f"accepts ({limits})",
        expected=f"images that fit {limits}",
        fix="segment it in tiles with Segmenter.predict_tiled(image) or "
            "`segdeploy predict --tile N`, or rebuild the engine with a larger max shape")


def reflect_pad(batch: np.ndarray, layout: PadLayout) -> np.ndarray:
    """Pad an N x H x W x C batch by reflection (edge replication for 1-pixel images)."""
    if not (layout.top or layout.bottom or layout.left or layout.right):
        return batch
    widths = ((0, 0), (layout.top, layout.bottom), (layout.left, layout.right), (0, 0))
    if min(batch.shape[1:3]) > 1:
        return np.pad(batch, widths, mode="reflect")
    return np.pad(batch, widths, mode="edge")  # a 1-pixel side cannot reflect


def to_model_input(batch: np.ndarray, *, dtype: np.dtype, layout: str,
                   mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """N x H x W x C uint8 -> what the graph takes: normalised float32 NCHW, or raw uint8
    in the graph's layout when it normalises in-graph.

    Normalisation looks every byte up in a 256-entry table per channel made by
    `imaging.normalize` itself, so the values are bit-identical to it at a third of the cost.
    """
    if np.dtype(dtype) == np.uint8:
        if layout == "NHWC":
            return np.ascontiguousarray(batch)
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
    n, h, w, c = batch.shape
    table = _normalize_table(tuple(float(m) for m in mean), tuple(float(s) for s in std), c)
    out = np.empty((n, c, h, w), dtype=np.float32)
    for i in range(n):
        for ch in range(c):
            # mode="clip": not buffered through a bounds check (a byte indexes 256 entries)
            np.take(table[ch], batch[i, :, :, ch], out=out[i, ch], mode="clip")
    return out if np.dtype(dtype) == np.float32 else out.astype(dtype)


@lru_cache(maxsize=16)
def _normalize_table(mean: tuple[float, ...], std: tuple[float, ...],
                     channels: int) -> np.ndarray:
    """C x 256 float32: imaging.normalize of every uint8 value, per channel."""
    levels = np.repeat(np.arange(256, dtype=np.uint8).reshape(1, 256, 1), channels, axis=2)
    table = normalize(levels, list(mean), list(std))[:, 0, :]
    table.setflags(write=False)
    return table


def argmax_classes(logits: np.ndarray, dtype: npt.DTypeLike = np.uint8,
                   threshold: float | None = None) -> np.ndarray:
    """N x K x H x W -> N x H x W class ids (the first maximum wins), exactly np.argmax.

    np.argmax over the class axis of NCHW logits transposes them into K-long rows (~2-3.5 ms
    at K=21 for 256x256); here the maximum over classes is a fast reduction, and the first
    class reaching it is the largest of (K-1-k) * (logit_k == max), in uint8, a band of
    rows at a time so that the band stays in cache: ~0.5 ms (benchmarks/runtime_overhead.py).
    A NaN logit (np.argmax returns the first NaN) takes np.argmax. One channel is a binary
    head: class 1 where it is above `threshold` (the card's; 0, a logit's, when None).
    """
    k = logits.shape[1] if logits.ndim == 4 else 0
    if k == 1:
        return np.greater(logits[:, 0], 0.0 if threshold is None else threshold).astype(
            dtype, copy=False)
    if k <= 1 or k > 256 or not np.issubdtype(logits.dtype, np.floating):
        return np.argmax(logits, axis=1).astype(dtype, copy=False)
    n, _, h, w = logits.shape
    ranks = np.arange(k - 1, -1, -1, dtype=np.uint8).reshape(1, k, 1, 1)
    first = np.empty((n, h, w), dtype=np.uint8)
    rows = max(1, (1 << 19) // max(k * w * logits.itemsize, 1))
    for top in range(0, h, rows):
        band = logits[:, :, top:top + rows]
        peak = band.max(axis=1, keepdims=True)
        if np.isnan(peak).any():
            return np.argmax(logits, axis=1).astype(dtype, copy=False)
        score = np.equal(band, peak).view(np.uint8)  # 1 where a class reaches the maximum
        score *= ranks
        out = first[:, top:top + rows]
        np.max(score, axis=1, out=out)
        np.subtract(np.uint8(k - 1), out, out=out)
    return first.astype(dtype, copy=False)


def as_masks(out: np.ndarray, dtype: npt.DTypeLike = np.uint8,
             threshold: float | None = None) -> np.ndarray:
    """N x H x W masks (a graph's own argmax) in `dtype`, or N x K x H x W logits' argmax
    (N x 1 x H x W: thresholded)."""
    if out.ndim == 3:
        return out.astype(dtype, copy=False)
    return argmax_classes(out, dtype, threshold)


def crop_offsets(layout: PadLayout, input_hw: tuple[int, int], output_hw: tuple[int, int],
                 image_hw: tuple[int, int]) -> tuple[int, int] | None:
    """Where the image starts in the model output, or None when the output does not cover
    it (a "valid" model that needs more context padding)."""
    offsets = []
    for pad, n_in, n_out, n_img in zip((layout.top, layout.left), input_hw, output_hw, image_hw,
                                       strict=True):
        start = pad - (n_in - n_out) // 2
        if start < 0 or start + n_img > n_out:
            return None
        offsets.append(start)
    return offsets[0], offsets[1]
