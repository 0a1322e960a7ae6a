"""Data for INT8 quantization: calibration feeds from training images, and the segmentation gate.

Calibration feeds are made exactly as `Segmenter` makes them (the model card's channel mode,
mean/std, size rules, the graph's own input dtype and layout), so the ranges ONNX Runtime
measures are those the deployed model sees. The gate compares an INT8 graph with its FP32
source on real validation images: argmax agreement and mIoU against the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import DataError
from segdeploy.manifest import ExportInfo
from segdeploy.metrics import ConfusionMatrix
from segdeploy.runtime.preprocess import SizeBox, choose_padding, reflect_pad, to_model_input


def spread(n_total: int, n: int) -> list[int]:
    """n indices spread evenly over 0..n_total-1 (all of them when n >= n_total)."""
    if n >= n_total:
        return list(range(n_total))
    return [int(i) for i in np.linspace(0, n_total - 1, n).round()]


def load_split(data: str, info: ExportInfo, split: str, limit: int
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to `limit` (image, mask) pairs of a dataset split, read in the model's channel mode."""
    from segdeploy.data import get_dataset

    ds = get_dataset(data, split=split, channel_mode=info.card.channel_mode or None)
    if len(ds) == 0:
        raise DataError(f"the {split} split of {data!r} is empty",
                        expected="images to calibrate on and to check the INT8 model with")
    if ds.num_classes != info.card.num_classes:
        raise DataError(f"{data!r} has {ds.num_classes} classes, the model {info.card.num_classes}",
                        expected="the dataset the model was trained on",
                        fix="pass --data with the model's training data")
    return [ds[i] for i in spread(len(ds), limit)]


def model_feed(image: np.ndarray, info: ExportInfo, dtype: np.dtype) -> np.ndarray:
    """One HxWxC uint8 image -> the graph's 1-image input, reflection-padded to a valid size."""
    card = info.card
    h, w = image.shape[:2]
    plan = choose_padding(h, w, boxes=[SizeBox()], multiple=max(card.size_multiple, 1),
                        min_size=card.min_size)
    layout = info.input_layout.upper() if np.dtype(dtype) == np.uint8 else "NCHW"
    return to_model_input(reflect_pad(image[None], plan), dtype=dtype, layout=layout,
                          mean=card.mean, std=card.std)


def common_crops(images: list[np.ndarray], info: ExportInfo) -> tuple[list[np.ndarray], str]:
    """Images of one size for calibration (ONNX Runtime's histogram calibrators stack every
    batch of a tensor, so mixed sizes fail): centre crops to the smallest height and width,
    kept a size the model takes; images smaller than that are padded by model_feed."""
    sizes = {im.shape[:2] for im in images}
    if len(sizes) <= 1:
        return images, ""
    card = info.card
    m = max(card.size_multiple, 1)
    h = max(min(s[0] for s in sizes) // m * m, card.fit_side(1))
    w = max(min(s[1] for s in sizes) // m * m, card.fit_side(1))
    out = []
    for im in images:
        top, left = max((im.shape[0] - h) // 2, 0), max((im.shape[1] - w) // 2, 0)
        out.append(im[top:top + h, left:left + w])
    return out, (f"calibration images have {len(sizes)} sizes: calibrated on centre crops of "
                 f"{h}x{w}")


class CalibrationFeeds:
    """An onnxruntime.quantization CalibrationDataReader over pre-made feeds."""

    def __init__(self, name: str, feeds: list[np.ndarray]) -> None:
        self.name = name
        self._items = [{name: f} for f in feeds]
        self._it = iter(self._items)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._items)


@dataclass
class GateResult:
    """An INT8 graph against its FP32 source on labelled images."""

    agreement: float  #: argmax agreement, percent of pixels
    miou_fp32: float  #: points
    miou_int8: float
    images: int

    @property
    def miou_drop(self) -> float:
        return self.miou_fp32 - self.miou_int8

    def passes(self, min_agreement: float, max_miou_drop: float | None) -> bool:
        drop_ok = max_miou_drop is None or self.miou_drop <= max_miou_drop
        return self.agreement >= min_agreement and drop_ok

    def to_dict(self) -> dict[str, Any]:
        return {"agreement": self.agreement, "miou_fp32": self.miou_fp32,
                "miou_int8": self.miou_int8, "miou_drop": self.miou_drop,
                "images": self.images}


def predict_masks(path: Path, images: list[np.ndarray], *, threads: int | None = None
                  ) -> list[np.ndarray]:
    """Class-id masks of each image with ONNX Runtime (Segmenter: padding, crop, argmax)."""
    from segdeploy.runtime import Segmenter

    with Segmenter.load(path, backend="onnxruntime", providers="cpu", threads=threads) as seg:
        return [seg.predict(im) for im in images]


def judge(reference: list[np.ndarray], masks: list[np.ndarray], labels: list[np.ndarray],
          num_classes: int) -> GateResult:
    """Agreement of `masks` with the FP32 `reference` masks and both sides' mIoU."""
    agree = pixels = 0
    ref_cm, eng_cm = ConfusionMatrix(num_classes), ConfusionMatrix(num_classes)
    for ref, got, lab in zip(reference, masks, labels, strict=True):
        agree += int((ref == got).sum())
        pixels += ref.size
        ref_cm.update(ref, lab)
        eng_cm.update(got, lab)
    miou_ref = ref_cm.compute()["mean_iou"] or 0.0
    miou_eng = eng_cm.compute()["mean_iou"] or 0.0
    return GateResult(100.0 * agree / max(pixels, 1), 100.0 * miou_ref, 100.0 * miou_eng,
                      len(reference))
