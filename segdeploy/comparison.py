"""How two backends' outputs are compared, and what counts as a pass: defined once. numpy only.

Export (ONNX Runtime vs PyTorch), build (TensorRT vs ONNX Runtime) and verify (an engine vs
PyTorch on labelled images) all use these definitions, so "FP16 passes" means one thing.

- argmax agreement: the fraction of pixels whose class id is the same in both outputs;
  logits are argmaxed over the class axis, integer masks are taken as they are.
- ties: a pixel whose reference top-2 logit margin is below twice the tolerance may flip
  under any rounding; FP32 parity demands 100% agreement only off ties.
- gates by precision: FP32 agreement >= 99.9%; FP16 (and BF16) >= 99.5% with an mIoU drop of
  at most 0.5 point; INT8 >= 99% with a drop of at most 1 point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from segdeploy.errors import UsageError
from segdeploy.precision import Precision

#: FP32 logits must agree to max |diff| <= FP32_RTOL * max(1, max |logit|)
FP32_RTOL = 1e-4


@dataclass(frozen=True)
class Gate:
    """What a graph of one precision must reach: agreement as a fraction, mIoU drop in points."""

    precision: Precision
    min_agreement: float
    max_miou_drop: float | None = None

    @property
    def min_agreement_percent(self) -> float:
        return round(100.0 * self.min_agreement, 6)


GATES: dict[Precision, Gate] = {
    Precision.FP32: Gate(Precision.FP32, 0.999, None),
    Precision.FP16: Gate(Precision.FP16, 0.995, 0.5),
    Precision.INT8: Gate(Precision.INT8, 0.99, 1.0),
}

#: the FP16 gate, which export's FP16 check and the build's smoke parity both apply
FP16_GATE = GATES[Precision.FP16]
FP16_MIN_AGREEMENT = FP16_GATE.min_agreement


def gate_for(precision: str | Precision | None) -> Gate:
    """The gate of a precision (Precision.parse reads the label): bf16 is judged as fp16."""
    return GATES[Precision.parse(precision).gate]


@dataclass(frozen=True)
class Thresholds:
    """What an engine must reach to pass: agreement in percent, mIoU drop in points (a gate
    with the user's overrides); verify and quantize judge by it."""

    min_agreement: float
    max_miou_drop: float | None = None

    @classmethod
    def for_precision(cls, precision: str | Precision, *, min_agreement: float | None = None,
                      max_miou_drop: float | None = None) -> Thresholds:
        """Defaults read from the engine's precision; the user's values win where given."""
        gate = gate_for(precision)
        out = cls(gate.min_agreement_percent if min_agreement is None else float(min_agreement),
                  gate.max_miou_drop if max_miou_drop is None else float(max_miou_drop))
        if not 0.0 <= out.min_agreement <= 100.0:
            raise UsageError(f"--min-agreement {out.min_agreement}",
                             expected="a percentage between 0 and 100 (e.g. 99.5)")
        if out.max_miou_drop is not None and out.max_miou_drop < 0:
            raise UsageError(f"--max-miou-drop {out.max_miou_drop}",
                             expected="0 or more mIoU points (e.g. 0.5)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"min_agreement": self.min_agreement, "max_miou_drop": self.max_miou_drop}


def class_map(output: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class ids per pixel: argmax over axis 1 of N x K x H x W logits (one channel: above
    `threshold`, 0 when None, is class 1), integer masks as is."""
    output = np.asarray(output)
    if output.ndim == 4 and np.issubdtype(output.dtype, np.floating):
        if output.shape[1] == 1:
            return (output[:, 0] > (0.0 if threshold is None else threshold)).astype(np.int64)
        return output.argmax(axis=1)
    return output.astype(np.int64)


def argmax_agreement(reference: np.ndarray, test: np.ndarray,
                     threshold: float | None = None) -> float:
    """Fraction of pixels whose class is the same in both outputs (0 when shapes differ);
    a binary head's outputs are thresholded first."""
    ref, got = class_map(reference, threshold), class_map(test, threshold)
    if ref.shape != got.shape or ref.size == 0:
        return 0.0
    return float((ref == got).mean())


def top2_margin(logits: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """N x H x W gap between the best and second-best logit; for one channel (a binary
    head) the distance to the threshold, which is what a small error can flip."""
    if logits.shape[1] < 2:
        return np.abs(logits[:, 0].astype(np.float64) - (threshold or 0.0))
    top2 = np.partition(logits, -2, axis=1)
    return (top2[:, -1] - top2[:, -2]).astype(np.float64)


def fp32_tolerance(reference_logits: np.ndarray) -> float:
    """The FP32 logit tolerance for this reference: FP32_RTOL * max(1, max |logit|)."""
    return FP32_RTOL * max(1.0, float(np.max(np.abs(reference_logits))) if
                           reference_logits.size else 1.0)


def nontied(reference_logits: np.ndarray, tolerance: float,
            threshold: float | None = None) -> np.ndarray:
    """N x H x W: pixels whose class cannot flip under errors within `tolerance`."""
    return top2_margin(reference_logits, threshold) >= 2 * tolerance


@dataclass(frozen=True)
class LogitErrors:
    """|reference - test| over all logits, and whether the test side stayed finite."""

    max_abs: float
    mean_abs: float
    p99_abs: float
    finite: bool


def logit_errors(reference: np.ndarray, test: np.ndarray) -> LogitErrors:
    """Absolute logit errors; non-finite test values make max/p99 infinite."""
    ref = np.asarray(reference, dtype=np.float64)
    got = np.asarray(test, dtype=np.float64)
    finite = bool(np.isfinite(got).all())
    diff = np.nan_to_num(np.abs(ref - got), nan=np.inf, posinf=np.inf)
    if diff.size == 0:
        return LogitErrors(0.0, 0.0, 0.0, finite)
    return LogitErrors(float(diff.max()), float(diff.mean()), float(np.percentile(diff, 99)),
                       finite)
