"""The one definition of agreement, ties and gates that export, build and verify share."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.comparison import (
    FP16_MIN_AGREEMENT,
    GATES,
    argmax_agreement,
    fp32_tolerance,
    gate_for,
    logit_errors,
    nontied,
    top2_margin,
)


@pytest.mark.parametrize(("label", "gate"), [
    ("fp32", "fp32"), (None, "fp32"), ("fp16", "fp16"), ("bf16", "fp16"), ("mixed", "fp16"),
    ("int8", "int8"), ("qdq", "int8"), ("float16", "fp16"),
])
def test_gate_for_precision_labels(label: str | None, gate: str) -> None:
    assert gate_for(label) is GATES[gate]


def test_a_label_is_read_exactly_not_by_substring() -> None:
    from segdeploy.errors import UsageError

    for label in ("QDQ-int8", "int16", "fp16x"):  # substring matching took these
        with pytest.raises(UsageError, match="unknown precision"):
            gate_for(label)


def test_gates_are_ordered_and_fp16_is_the_documented_one() -> None:
    assert FP16_MIN_AGREEMENT == 0.995
    assert GATES["fp32"].min_agreement > GATES["fp16"].min_agreement > GATES["int8"].min_agreement
    assert GATES["fp16"].min_agreement_percent == 99.5


def test_agreement_counts_flipped_pixels_and_masks() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5, 7)).astype(np.float32)
    flipped = logits.copy()
    flipped[0, :, 0, 0] = -logits[0, :, 0, 0]
    expected = 1.0 - float((flipped.argmax(1) != logits.argmax(1)).sum()) / (2 * 5 * 7)
    assert argmax_agreement(logits, flipped) == pytest.approx(expected)
    assert argmax_agreement(logits, logits.argmax(1).astype(np.int32)) == 1.0
    assert argmax_agreement(logits, logits[:, :, :4]) == 0.0  # shapes differ


def test_ties_and_errors() -> None:
    logits = np.zeros((1, 2, 1, 3), np.float32)
    logits[0, 0] = [[1.0, 0.0, 5.0]]
    logits[0, 1] = [[1.0 + 1e-6, 3.0, 0.0]]
    margin = top2_margin(logits)
    assert margin.shape == (1, 1, 3) and margin[0, 0, 1] == pytest.approx(3.0)
    tol = fp32_tolerance(logits)
    assert tol == pytest.approx(5e-4)
    assert nontied(logits, tol).tolist() == [[[False, True, True]]]
    errs = logit_errors(logits, logits + 0.25)
    assert errs.max_abs == pytest.approx(0.25) and errs.finite
    bad = logits.copy()
    bad[0, 0, 0, 0] = np.nan
    assert logit_errors(logits, bad).max_abs == np.inf and not logit_errors(logits, bad).finite
