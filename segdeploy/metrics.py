"""Confusion-matrix segmentation metrics in numpy only (the torch-free runtime reuses them).

The four summary metrics are exactly those of Long, Shelhamer and Darrell, "Fully
Convolutional Networks for Semantic Segmentation" (CVPR 2015), section 5. With n_ij the
number of pixels of class i predicted to belong to class j, n_cl the number of classes and
t_i = sum_j n_ij the number of pixels of class i:

    pixel accuracy            sum_i n_ii / sum_i t_i
    mean accuracy             (1/n_cl) sum_i n_ii / t_i
    mean IU                   (1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)
    frequency weighted IU     (sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)

Absent classes (the NaN-safe rule): a ratio whose denominator is zero is undefined, reported
as ``None`` in the per-class lists (JSON-safe) and left out of the means, so n_cl counts only
the classes where the ratio is defined. For IoU and Dice that excludes exactly the classes
absent from both prediction and target; a class predicted but absent from the target has
IoU 0 and counts. Mean accuracy averages over the classes present in the target (t_i > 0).
Pixels whose target equals ``ignore_index`` (255, VOC's "void") are not counted at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from segdeploy.errors import InputError
from segdeploy.imaging import IGNORE_INDEX

#: keys of ConfusionMatrix.compute() that are single numbers (the FCN paper's four metrics)
SUMMARY_KEYS = ("pixel_accuracy", "mean_accuracy", "mean_iou", "fw_iou")


class ConfusionMatrix:
    """Accumulates a num_classes x num_classes matrix: rows = target class, columns = prediction."""

    def __init__(self, num_classes: int, ignore_index: int | None = IGNORE_INDEX):
        if int(num_classes) < 1:
            raise InputError(f"num_classes is {num_classes}", expected="at least 1")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        self.matrix[:] = 0

    def update(self, pred: np.ndarray, target: np.ndarray) -> ConfusionMatrix:
        """Add one prediction (class ids) against its target (class ids, ignore_index = skip)."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise InputError(f"prediction has shape {pred.shape} but target has {target.shape}",
                             expected="the same shape (class ids, e.g. N x H x W)",
                             fix="take the argmax over the class axis and crop/resize the "
                                 "prediction to the mask size")
        if not (np.issubdtype(pred.dtype, np.integer) and np.issubdtype(target.dtype, np.integer)):
            raise InputError(f"prediction/target dtypes are {pred.dtype}/{target.dtype}",
                             expected="integer class ids", fix="pass argmax(logits), not logits")
        k = self.num_classes
        t = target.reshape(-1).astype(np.int64, copy=False)
        p = pred.reshape(-1).astype(np.int64, copy=False)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            if not keep.all():
                t, p = t[keep], p[keep]
        if t.size == 0:
            return self
        ignore = f" or {self.ignore_index} (ignore)" if self.ignore_index is not None else ""
        for name, a in (("target", t), ("prediction", p)):
            lo, hi = int(a.min()), int(a.max())
            if lo < 0 or hi >= k:
                raise InputError(
                    f"{name} holds class id {hi if hi >= k else lo}",
                    expected=f"class ids in 0..{k - 1}{ignore}",
                    fix="check --num-classes against the masks (class ids must be below it)")
        self.matrix += np.bincount(t * k + p, minlength=k * k).reshape(k, k)
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix in place (e.g. from another process or another batch of files)."""
        if not isinstance(other, ConfusionMatrix) or other.num_classes != self.num_classes:
            raise InputError("cannot merge confusion matrices of different class counts",
                             expected=f"{self.num_classes} classes")
        self.matrix += other.matrix
        return self

    def __add__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        out = ConfusionMatrix(self.num_classes, self.ignore_index)
        out.matrix = self.matrix.copy()
        return out.merge(other)

    def __iadd__(self, other: ConfusionMatrix) -> ConfusionMatrix:
        return self.merge(other)

    @classmethod
    def from_matrix(cls, matrix: np.ndarray, ignore_index: int | None = IGNORE_INDEX
                    ) -> ConfusionMatrix:
        m = np.asarray(matrix)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise InputError(f"confusion matrix has shape {m.shape}", expected="a square K x K")
        out = cls(m.shape[0], ignore_index)
        out.matrix = m.astype(np.int64)
        return out

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def compute(self) -> dict[str, Any]:
        """The FCN paper's four metrics plus per-class IoU and Dice (None where undefined)."""
        n = self.matrix.astype(np.float64)
        tp = np.diag(n)
        t = n.sum(axis=1)  # t_i: target pixels of class i
        p = n.sum(axis=0)  # sum_j n_ji: pixels predicted as class i
        union = t + p - tp
        total = t.sum()
        acc = _ratio(tp, t)
        iou = _ratio(tp, union)
        dice = _ratio(2 * tp, t + p)
        fw = float((t[union > 0] * iou[union > 0]).sum() / total) if total > 0 else None
        return {
            "pixel_accuracy": float(tp.sum() / total) if total > 0 else None,
            "mean_accuracy": _nanmean(acc),
            "mean_iou": _nanmean(iou),
            "fw_iou": fw,
            "iou": _listify(iou),
            "dice": _listify(dice),
            "accuracy": _listify(acc),
            "support": [int(x) for x in t],
            "pixels": int(total),
        }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _nanmean(x: np.ndarray) -> float | None:
    valid = ~np.isnan(x)
    return float(x[valid].mean()) if valid.any() else None


def _listify(x: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in x]


#: boundary pixels within this many pixels of the other map's boundary count as matched
BOUNDARY_TOLERANCE = 2


def class_boundaries(labels: np.ndarray, cls: int, ignored: np.ndarray | None = None
                     ) -> np.ndarray:
    """H x W bool: pixels of class `cls` with a 4-neighbour of another class (the image
    border is no boundary: the map is extended by its edge; nor is an `ignored` pixel)."""
    core = labels == cls
    inside = np.pad(core if ignored is None else core | ignored, 1, mode="edge")
    edge = ~(inside[:-2, 1:-1] & inside[2:, 1:-1] & inside[1:-1, :-2] & inside[1:-1, 2:])
    return core & edge


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation of an H x W bool map by a disc of `radius` pixels."""
    if radius <= 0:
        return mask.copy()
    r = int(radius)
    padded = np.pad(mask, r)
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= r * r:
                out |= padded[r + dy:r + dy + h, r + dx:r + dx + w]
    return out


class BoundaryF:
    """Boundary F-measure (Csurka, Larlus & Perronnin, BMVC 2013): per class, the share of
    predicted boundary pixels within `tolerance` pixels of a true boundary (precision) and of
    true boundary pixels within `tolerance` of a predicted one (recall), F = 2PR / (P + R).
    Counts add up over images (as the confusion matrix does); `mean` averages the classes
    whose F is defined. Predicted boundary pixels on `ignore_index` target pixels are not
    counted, nor are the target's edges against an ignored region."""

    def __init__(self, num_classes: int, tolerance: int = BOUNDARY_TOLERANCE,
                 ignore_index: int | None = IGNORE_INDEX):
        self.num_classes = int(num_classes)
        self.tolerance = int(tolerance)
        self.ignore_index = ignore_index
        #: per class: matched predicted, predicted, matched true, true boundary pixels
        self.counts = np.zeros((self.num_classes, 4), dtype=np.int64)

    def update(self, pred: np.ndarray, target: np.ndarray) -> BoundaryF:
        """Add one H x W prediction (class ids) against its H x W target."""
        pred, target = np.asarray(pred), np.asarray(target)
        if pred.shape != target.shape or pred.ndim != 2:
            raise InputError(f"prediction {pred.shape} and target {target.shape}",
                             expected="two H x W class-id maps of one size")
        ignored = (target == self.ignore_index) if self.ignore_index is not None else \
            np.zeros(target.shape, bool)
        keep = ~ignored
        for c in range(self.num_classes):
            pb = class_boundaries(pred, c) & keep
            tb = class_boundaries(target, c, ignored)
            if not (pb.any() or tb.any()):
                continue
            self.counts[c] += (int((pb & dilate(tb, self.tolerance)).sum()), int(pb.sum()),
                               int((tb & dilate(pb, self.tolerance)).sum()), int(tb.sum()))
        return self

    def compute(self) -> dict[str, Any]:
        """{"mean": mean F over defined classes, "f", "precision", "recall": per class}."""
        mp, p, mt, t = (self.counts[:, i].astype(np.float64) for i in range(4))
        precision = _ratio(mp, p)
        recall = _ratio(mt, t)
        pr, rc = np.nan_to_num(precision), np.nan_to_num(recall)  # none predicted: 0
        f = _ratio(2 * pr * rc, pr + rc)
        f[(pr + rc == 0) & (p + t > 0)] = 0.0
        f[p + t == 0] = np.nan  # no boundary of this class on either side: undefined
        return {"mean": _nanmean(f), "f": _listify(f), "precision": _listify(precision),
                "recall": _listify(recall), "tolerance": self.tolerance}
