"""Hand-made verify results for the report tests: masks small enough to count by hand."""

from __future__ import annotations

from typing import Any

import numpy as np

from segdeploy.comparison import Thresholds
from segdeploy.verify.parity import SizeComparison, check_thresholds
from segdeploy.verify.worst import WorstImage, WorstImages

#: PyTorch's mask and the engine's: three pixels differ, one per pair (0->1, 1->2, 2->0)
REFERENCE = np.array([[0, 0, 0, 1, 1, 1],
                      [0, 0, 0, 1, 1, 1],
                      [2, 2, 0, 0, 0, 0],
                      [2, 2, 0, 0, 0, 0]])
ENGINE = np.array([[0, 0, 1, 1, 1, 1],
                   [0, 0, 0, 1, 1, 2],
                   [2, 2, 0, 0, 0, 0],
                   [2, 0, 0, 0, 0, 0]])
DIFFER = {(0, 2): (0, 1), (1, 5): (1, 2), (3, 1): (2, 0)}
#: counted by hand over both images (the second agrees fully): class 0 shares 13 of 15 pixels
#: on the first and 14 of 14 on the second, class 1 5 of 7 and 6 of 6, class 2 3 of 5 and 4 of 4
IOU = [27 / 29, 11 / 13, 7 / 9]
#: 3 of 48 pixels differ
AGREEMENT = 100 * 45 / 48
CLASSES = ["background", "grey matter", "white matter"]


def one_hot_logits(masks: np.ndarray, k: int = 3) -> np.ndarray:
    """N x K x H x W logits whose argmax is `masks`."""
    return (np.eye(k, dtype=np.float32)[masks].transpose(0, 3, 1, 2) * 4.0) - 2.0


def hand_made_report(thresholds: Thresholds | None = None) -> tuple[dict[str, Any],
                                                                    list[WorstImage]]:
    """A report shaped like run_verify's for two 4x6 images (the second agrees fully)."""
    thresholds = thresholds or Thresholds.for_precision("fp16")
    ref = np.stack([REFERENCE, REFERENCE])
    eng = np.stack([ENGINE, REFERENCE])
    images = np.stack([np.full((4, 6, 1), 200, np.uint8), np.full((4, 6, 1), 60, np.uint8)])
    comp = SizeComparison((4, 6), 3)
    ref_masks, eng_masks = comp.add(one_hot_logits(ref), one_hot_logits(eng), ref)
    worst = WorstImages(4)
    worst.add([7, 9], (4, 6), images, ref_masks, eng_masks)
    result = comp.result()
    result["failures"] = check_thresholds(result, thresholds)
    report = {
        "checkpoint": "unet_brain.pt", "engine": "/tmp/unet_brain.fp16.onnx",
        "engine_name": "unet_brain.fp16.onnx", "backend": "onnxruntime", "precision": "fp16",
        "judged_as": "fp16", "arch": "unet", "classes": CLASSES, "data": "brain",
        "split": "val", "images": 2, "thresholds": thresholds.to_dict(), "sizes": [result],
        "pad_to_stride": True, "passed": not result["failures"], "notes": [],
    }
    return report, worst.items()
