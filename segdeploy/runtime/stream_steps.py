"""The three steps of one frame in `Segmenter.stream`: prepare, infer, finish.

They split `Segmenter.predict` of one image (`_run_aligned`) at its two seams, so a pipeline
can run them on different threads: `prepare` (intensity mapping, reflection padding, the
model's input array) and `finish` (crop, argmax) are numpy work that runs ahead of and behind
`infer`, which is only the runner call. The arithmetic is Segmenter's own (same helpers, same
order), so masks are identical to `predict`. Frames the split does not cover (a fixed-size
graph, auto-tiled images, "valid"-mode models whose margin may still be learnt, engines whose
profiles start above batch 1) are marked `whole` and go through `predict` in the infer step.
`seg` is a Segmenter, typed Any: segmenter.py imports this package, not the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from segdeploy.runtime.preprocess import PadLayout, crop_offsets, reflect_pad, to_model_input


@dataclass
class Prepared:
    """One frame between the steps: the model-ready image and, unless `whole`, its feed."""

    index: int
    meta: Any
    image: np.ndarray  # HxWxC uint8, what predict() would segment
    feed: Any = None  # the model input (numpy, or a DeviceView once staged)
    layout: PadLayout | None = None
    padded_hw: tuple[int, int] = (0, 0)
    slot: int | None = None  # the device input slot holding `feed` (TensorRT staging)
    output: np.ndarray | None = None  # the runner's output, or predict()'s mask when whole

    @property
    def whole(self) -> bool:
        return self.layout is None


def output_name(seg: Any) -> str:
    """The graph's in-graph mask when it has one, else its logits (as predict asks)."""
    return seg._mask_name or seg._logits_name


def prepare(seg: Any, index: int, raw: np.ndarray, meta: Any) -> Prepared:
    """Intensity mapping, padding and the model input of one frame (worker threads)."""
    image = seg._as_image(raw)
    h, w = image.shape[:2]
    if (seg.static_size is not None or seg.card.output_mode != "same"
            or seg._needs_tiling(1, h, w)):
        return Prepared(index, meta, image)
    layout = seg._padding(h, w)
    if layout.box.batch[0] > 1:
        return Prepared(index, meta, image)
    padded = reflect_pad(image[None], layout)
    feed = to_model_input(padded, dtype=seg._spec.dtype, layout=seg._layout,
                          mean=seg.card.mean, std=seg.card.std)
    return Prepared(index, meta, image, feed, layout, (padded.shape[1], padded.shape[2]))


def infer(seg: Any, item: Prepared) -> Prepared:
    """The runner call alone (the inference thread): back to back, nothing else."""
    if item.whole:
        item.output = seg.predict(item.image)
        return item
    name = output_name(seg)
    item.output = seg.runner.infer({seg.info.input_name: item.feed}, output_names=[name],
                                   check=False)[name][:1]
    item.feed = None  # the input may be large; the mask is all that is left to make
    return item


def finish(seg: Any, item: Prepared) -> np.ndarray:
    """Crop and argmax (worker threads): the frame's HxW class ids in seg.mask_dtype."""
    out = item.output
    assert out is not None
    if item.whole:
        return out
    h, w = item.image.shape[:2]
    assert item.layout is not None
    start = crop_offsets(item.layout, item.padded_hw, out.shape[-2:], (h, w))
    if start is None:  # cannot happen for "same" models; predict() knows what to do
        return seg.predict(item.image)
    return seg._as_wanted(out[..., start[0]:start[0] + h, start[1]:start[1] + w], "mask")[0]
