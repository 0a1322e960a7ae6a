"""Boundary F on hand-made maps whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.errors import InputError
from segdeploy.metrics import BoundaryF, class_boundaries, dilate


def stripe(left: int, right: int) -> np.ndarray:
    """20 x 30: class 1 in columns left..right-1, class 0 elsewhere."""
    m = np.zeros((20, 30), np.uint8)
    m[:, left:right] = 1
    return m


def test_one_edge_matched_one_edge_four_pixels_off_is_half() -> None:
    # true stripe 10..19, predicted 10..23: the left edges coincide, the right ones are 4
    # pixels apart (> 2): half of each side's boundary pixels are matched, F = 0.5
    out = BoundaryF(2).update(stripe(10, 24), stripe(10, 20)).compute()
    assert out["f"] == [0.5, 0.5] and out["precision"] == [0.5, 0.5]
    assert out["recall"] == [0.5, 0.5] and out["mean"] == 0.5


def test_tolerance_decides_a_two_pixel_shift() -> None:
    target, shifted = stripe(10, 20), stripe(12, 22)
    assert BoundaryF(2, tolerance=2).update(shifted, target).compute()["mean"] == 1.0
    assert BoundaryF(2, tolerance=1).update(shifted, target).compute()["mean"] == 0.0


def test_missing_class_scores_zero_and_absent_class_is_undefined() -> None:
    out = BoundaryF(3).update(np.zeros((20, 30), np.uint8), stripe(10, 20)).compute()
    assert out["f"] == [0.0, 0.0, None]  # class 2 is nowhere: left out of the mean
    assert out["recall"] == [0.0, 0.0, None] and out["mean"] == 0.0


def test_counts_add_over_images_and_ignore_is_skipped() -> None:
    bf = BoundaryF(2)
    bf.update(stripe(10, 20), stripe(10, 20))  # perfect: 40 of 40 per class
    bf.update(stripe(10, 24), stripe(10, 20))  # half
    assert bf.compute()["f"] == [pytest.approx(0.75)] * 2
    target = stripe(10, 20)
    target[:, 15:] = 255  # the right edge lies in an ignored region
    assert BoundaryF(2).update(stripe(10, 24), target).compute()["mean"] == 1.0


def test_boundaries_and_dilation() -> None:
    b = class_boundaries(stripe(10, 20), 1)
    assert b.sum() == 40 and b[:, 10].all() and b[:, 19].all()  # no edge at the border
    d = dilate(b, 2)
    assert d[:, 8:12].all() and not d[:, 7].any() and not d[:, 13].any()
    with pytest.raises(InputError):
        BoundaryF(2).update(np.zeros((3, 4)), np.zeros((4, 3)))
