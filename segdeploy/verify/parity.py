"""Parity between a reference (PyTorch) and an engine: numbers per input size, and thresholds.

Pure numpy (plus segdeploy.metrics, also numpy): the comparison does not care which
backends produced the logits. Per size it reports the absolute logit error (max, mean, p99),
argmax pixel agreement, per-class IoU between the two argmax masks, and each backend's mIoU
against the ground-truth labels with the drop (reference - engine, in points).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segdeploy.comparison import Thresholds, class_map
from segdeploy.dims import parse_dims_list
from segdeploy.errors import InputError
from segdeploy.metrics import ConfusionMatrix

#: log-spaced histogram of |error| for a bounded-memory p99 (2.3 % relative resolution)
_EDGES = np.logspace(-12, 4, 1601)

class SizeComparison:
    """Accumulates reference vs engine logits (and labels) at one input size, image by image."""

    def __init__(self, size: tuple[int, int], num_classes: int, *,
                 threshold: float | None = None):
        self.size = (int(size[0]), int(size[1]))
        self.num_classes = int(num_classes)
        #: a binary head's: one logit channel, class 1 above it
        self.threshold = threshold
        self.images = 0
        self.out_size: tuple[int, int] | None = None
        self._count = 0
        self._abs_sum = 0.0
        self._abs_max = 0.0
        self._hist = np.zeros(_EDGES.size + 1, dtype=np.int64)
        self._agree = 0
        self._pixels = 0
        self._between = ConfusionMatrix(num_classes, ignore_index=None)
        self._ref_gt = ConfusionMatrix(num_classes)
        self._eng_gt = ConfusionMatrix(num_classes)
        self._has_labels = False

    def add(self, ref_logits: np.ndarray, eng_logits: np.ndarray,
            labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Add N x K x H x W logits from both sides and optional N x H x W labels (255 ignored);
        return both sides' N x H x W class masks (reference, engine) for whoever keeps them."""
        ref = np.asarray(ref_logits, dtype=np.float32)
        eng = np.asarray(eng_logits, dtype=np.float32)
        if ref.shape != eng.shape or ref.ndim != 4:
            raise InputError(f"reference logits {ref.shape} and engine logits {eng.shape} differ",
                             expected="the same N x K x H x W shape",
                             fix="check that the engine was exported from this checkpoint")
        channels = 1 if self.threshold is not None else self.num_classes
        if ref.shape[1] != channels:
            raise InputError(f"logits have {ref.shape[1]} channels",
                             expected=f"{channels} (the checkpoint's "
                                      f"{'binary head' if channels == 1 else 'classes'})")
        err = np.abs(ref - eng)
        if not np.isfinite(err).all():
            self._abs_max = float("inf")
            err = np.nan_to_num(err, nan=np.inf, posinf=np.inf)
        self._abs_max = max(self._abs_max, float(err.max()))
        self._abs_sum += float(err.sum(dtype=np.float64))
        self._count += err.size
        self._hist += np.bincount(np.searchsorted(_EDGES, err.ravel()),
                                  minlength=self._hist.size)
        ref_mask = class_map(ref, self.threshold)
        eng_mask = class_map(eng, self.threshold)
        self._agree += int((ref_mask == eng_mask).sum())
        self._pixels += ref_mask.size
        self._between.update(eng_mask, ref_mask)
        self.out_size = (int(ref.shape[2]), int(ref.shape[3]))
        self.images += ref.shape[0]
        if labels is not None:
            labels = np.asarray(labels)
            self._ref_gt.update(ref_mask, labels)
            self._eng_gt.update(eng_mask, labels)
            self._has_labels = True
        return ref_mask, eng_mask

    def _p99(self) -> float:
        if self._count == 0:
            return 0.0
        rank = int(np.ceil(0.99 * self._count))
        idx = int(np.searchsorted(np.cumsum(self._hist), rank))
        if idx == 0:
            return 0.0
        if idx >= _EDGES.size:
            return self._abs_max
        return min(float(_EDGES[idx]), self._abs_max)  # upper edge of the bin holding p99

    def result(self) -> dict[str, Any]:
        """JSON-ready numbers for this size (percentages for agreement and mIoU)."""
        between = self._between.compute()
        out: dict[str, Any] = {
            "size": list(self.size), "output_size": list(self.out_size or self.size),
            "images": self.images,
            "abs_error": {"max": self._abs_max,
                          "mean": self._abs_sum / self._count if self._count else 0.0,
                          "p99": self._p99()},
            "agreement": 100.0 * self._agree / self._pixels if self._pixels else 0.0,
            "iou_between": between["iou"],
        }
        if self._has_labels:
            ref, eng = self._ref_gt.compute()["mean_iou"], self._eng_gt.compute()["mean_iou"]
            out["miou_reference"] = None if ref is None else 100.0 * ref
            out["miou_engine"] = None if eng is None else 100.0 * eng
            out["miou_drop"] = (None if ref is None or eng is None
                                else 100.0 * (ref - eng))
        return out


def check_thresholds(result: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """Failures of one size's result against the thresholds, as sentences (empty: pass)."""
    fails = []
    h, w = result["size"]
    if result["agreement"] < thresholds.min_agreement:
        fails.append(f"{h}x{w}: argmax agreement {result['agreement']:.3f}% is below "
                     f"{thresholds.min_agreement:g}%")
    drop = result.get("miou_drop")
    if thresholds.max_miou_drop is not None and drop is not None \
            and drop > thresholds.max_miou_drop:
        fails.append(f"{h}x{w}: mIoU drops by {drop:.2f} points (more than "
                     f"{thresholds.max_miou_drop:g})")
    return fails


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'97x131,2x3x197x233' -> [(97, 131), (197, 233)]: H x W, or NxCxHxW as export reads it
    (segdeploy.dims), rejecting anything else clearly."""
    return [(dims[-2], dims[-1]) for dims in parse_dims_list(text, ranks=(2, 4), what="size")]
