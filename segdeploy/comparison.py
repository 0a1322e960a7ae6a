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

import numpy as np

#: FP32 logits must agree to max |diff| <= FP32_RTOL * max(1, max |logit|)
FP32_RTOL = 1e-4


@dataclass(frozen=True)
class Gate:
    """What a graph of one precision must reach: agreement as a fraction, mIoU drop in points."""

    precision: str
    min_agreement: float
    max_miou_drop: float | None = None

    @property
    def min_agreement_percent(self) -> float:
        return round(100.0 * self.min_agreement, 6)


GATES: dict[str, Gate] = {
    "fp32": Gate("fp32", 0.999, None),
    "fp16": Gate("fp16", 0.995, 0.5),
    "int8": Gate("int8", 0.99, 1.0),
}

#: the FP16 gate, which export's FP16 check and the build's smoke parity both apply
FP16_GATE = GATES["fp16"]
FP16_MIN_AGREEMENT = FP16_GATE.min_agreement


def gate_for(precision: str | None) -> Gate:
    """The gate of a precision label: 'fp16'/'bf16'/'mixed' -> FP16, 'int8'/'qdq' -> INT8."""
    text = (precision or "").lower()
    if "int8" in text or "qdq" in text:
        return GATES["int8"]
    if "16" in text or "mixed" in text:
        return GATES["fp16"]
    return GATES["fp32"]


def class_map(output: np.ndarray) -> np.ndarray:
    """Class ids per pixel: argmax over axis 1 of N x K x H x W logits, integer masks as is."""
    output = np.asarray(output)
    if output.ndim == 4 and np.issubdtype(output.dtype, np.floating):
        return output.argmax(axis=1)
    return output.astype(np.int64)


def argmax_agreement(reference: np.ndarray, test: np.ndarray) -> float:
    """Fraction of pixels whose class is the same in both outputs (0 when shapes differ)."""
    ref, got = class_map(reference), class_map(test)
    if ref.shape != got.shape or ref.size == 0:
        return 0.0
    return float((ref == got).mean())


def top2_margin(logits: np.ndarray) -> np.ndarray:
    """N x H x W gap between the best and second-best logit (inf with a single class)."""
    if logits.shape[1] < 2:
        return np.full(logits.shape[:1] + logits.shape[2:], np.inf)
    top2 = np.partition(logits, -2, axis=1)
    return (top2[:, -1] - top2[:, -2]).astype(np.float64)


def fp32_tolerance(reference_logits: np.ndarray) -> float:
    """The FP32 logit tolerance for this reference: FP32_RTOL * max(1, max |logit|)."""
    return FP32_RTOL * max(1.0, float(np.max(np.abs(reference_logits))) if
                           reference_logits.size else 1.0)


def nontied(reference_logits: np.ndarray, tolerance: float) -> np.ndarray:
    """N x H x W: pixels whose class cannot flip under errors within `tolerance`."""
    return top2_margin(reference_logits) >= 2 * tolerance


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
