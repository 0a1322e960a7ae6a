"""verify keeps only the N images that agree least, each once, at its worst size."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.verify.worst import WorstImages


def _batch(disagree: list[int], size: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images and masks where image i has disagree[i] differing pixels (of size*size)."""
    n = len(disagree)
    ref = np.zeros((n, size, size), np.int64)
    eng = ref.copy()
    for i, d in enumerate(disagree):
        eng[i].reshape(-1)[:d] = 1
    return np.zeros((n, size, size, 3), np.uint8), ref, eng


def test_keeps_the_worst_in_order_across_batches() -> None:
    worst = WorstImages(2)
    worst.add([0, 1, 2], (10, 10), *_batch([5, 0, 30]))
    worst.add([3, 4], (10, 10), *_batch([10, 1]))
    items = worst.items()
    assert [w.index for w in items] == [2, 3]
    assert [w.agreement for w in items] == [70.0, 90.0]
    assert items[0].engine.sum() == 30 and items[0].image.shape == (10, 10, 3)


def test_an_image_is_kept_once_at_its_worst_size() -> None:
    worst = WorstImages(3)
    worst.add([5], (10, 10), *_batch([2]))
    worst.add([5], (20, 20), *_batch([200], size=20))   # 50 %: worse, replaces
    worst.add([5], (8, 8), *_batch([1], size=8))        # better: ignored
    (item,) = worst.items()
    assert item.size == (20, 20) and item.agreement == 50.0 and item.reference.shape == (20, 20)


def test_kept_arrays_are_copies_and_keep_must_be_positive() -> None:
    images, ref, eng = _batch([3])
    worst = WorstImages(1)
    worst.add([0], (10, 10), images, ref, eng)
    eng[:] = 7
    assert worst.items()[0].engine.max() == 1
    with pytest.raises(ValueError, match="at least 1"):
        WorstImages(0)
