"""The images where an engine disagrees most with PyTorch, kept while verify runs.

Only the `keep` worst (lowest argmax agreement) are held, each with the image and both
masks at the size where it was worst, so a report can show them side by side however many
images and sizes verify runs: memory is bounded by `keep` images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_KEEP = 4


@dataclass(frozen=True)
class WorstImage:
    """One image: its index in the dataset, the size it ran at, the percentage of pixels
    both masks give the same class, and the pixels (image cropped to the masks' area)."""
    index: int
    size: tuple[int, int]
    agreement: float
    image: np.ndarray
    reference: np.ndarray
    engine: np.ndarray


class WorstImages:
    """Feed batches with `add`; `items()` returns the worst, lowest agreement first. An image
    seen at several sizes is kept once, at its worst size."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        if keep < 1:
            raise ValueError(f"keep={keep}: expected at least 1 image")
        self.keep = keep
        self._items: dict[int, WorstImage] = {}

    def add(self, indices: Sequence[int], size: tuple[int, int], images: np.ndarray,
            reference: np.ndarray, engine: np.ndarray) -> None:
        """N dataset indices, N x H x W x C images and two N x H x W masks (same H, W)."""
        if not (len(indices) == len(images) == len(reference) == len(engine)):
            raise ValueError(f"{len(indices)} indices, {len(images)} images, "
                             f"{len(reference)} and {len(engine)} masks: expected one each")
        agree = (np.asarray(reference) == np.asarray(engine)).reshape(len(indices), -1)
        for i, index in enumerate(indices):
            pct = 100.0 * float(agree[i].mean()) if agree[i].size else 100.0
            if not self._wanted(int(index), pct):
                continue
            self._items[int(index)] = WorstImage(
                int(index), (int(size[0]), int(size[1])), pct, np.array(images[i]),
                np.array(reference[i]), np.array(engine[i]))
            if len(self._items) > self.keep:
                best = max(self._items.values(), key=_order)
                del self._items[best.index]

    def _wanted(self, index: int, agreement: float) -> bool:
        held = self._items.get(index)
        if held is not None:
            return agreement < held.agreement
        if len(self._items) < self.keep:
            return True
        return agreement < max(w.agreement for w in self._items.values())

    def items(self) -> list[WorstImage]:
        return sorted(self._items.values(), key=_order)


def _order(w: WorstImage) -> tuple[float, int]:
    return w.agreement, w.index
