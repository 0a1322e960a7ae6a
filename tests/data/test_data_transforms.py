"""Augmentation keeps masks aligned with images and repeats exactly with a seed."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.data.transforms import TrainTransform, ValTransform, sample_rng
from segdeploy.errors import DataError


def _sample(h: int = 97, w: int = 131, c: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An image that encodes its mask: class k -> pixel value 40 + 60 k, blocky shapes."""
    rng = np.random.default_rng(3)
    coarse = rng.integers(0, 4, (h // 12 + 1, w // 12 + 1)).astype(np.uint8)
    mask = np.kron(coarse, np.ones((12, 12), np.uint8))[:h, :w]
    mask[:, :5] = 3  # asymmetric: a left-edge band reveals flips
    image = np.repeat((40 + 60 * mask)[:, :, None], c, axis=2).astype(np.uint8)
    return image, mask


def _interior(m: np.ndarray, r: int = 2) -> np.ndarray:
    """Pixels whose (2r+1)^2 neighbourhood holds a single class (not at the crop's border,
    where the unseen neighbours may differ)."""
    p = np.pad(m, r, constant_values=254)
    same = np.ones(m.shape, bool)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            same &= p[dy:dy + m.shape[0], dx:dx + m.shape[1]] == m
    return same


@pytest.mark.parametrize("c", [1, 3])
def test_train_transform_keeps_mask_aligned(c):
    image, mask = _sample(c=c)
    tf = TrainTransform(size=(64, 96), seed=1)
    for _ in range(12):
        out, m = tf(image, mask)
        assert out.shape == (64, 96, c) and m.shape == (64, 96)
        assert out.dtype == np.uint8 and m.dtype == np.uint8
        valid = m != 255
        decoded = np.clip(np.rint((out[..., 0].astype(float) - 40) / 60), 0, 3)
        # bilinear blurs region borders; away from them the decoded class must be exact
        inner = _interior(m) & valid
        assert inner.mean() > 0.3
        assert (decoded[inner] == m[inner]).all()
        assert (decoded[valid] == m[valid]).mean() > 0.85
        assert set(np.unique(m[valid])) <= {0, 1, 2, 3}  # nearest: no invented ids
        assert (out[~valid] == 0).all()


def test_flip_moves_image_and_mask_together():
    image, mask = _sample()
    tf = TrainTransform(size=mask.shape, scale=(1.0, 1.0), seed=0)
    flips = 0
    for _ in range(10):
        out, m = tf(image, mask)
        flipped = (m == mask[:, ::-1]).all()
        assert flipped or (m == mask).all()
        assert (out == (image[:, ::-1] if flipped else image)).all()
        flips += flipped
    assert 0 < flips < 10


def test_seed_makes_it_repeatable():
    image, mask = _sample()

    def run(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        tf = TrainTransform(40, seed=seed)
        return [tf(image, mask) for _ in range(6)]

    run1, run2, run3 = run(7), run(7), run(8)
    for p, q in zip(run1, run2, strict=True):
        assert np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1])
    assert any(not np.array_equal(p[0], q[0]) for p, q in zip(run1, run3, strict=True))
    tf = TrainTransform(40, seed=None)
    x1 = tf(image, mask, rng=sample_rng(0, 2, 5))
    x2 = tf(image, mask, rng=sample_rng(0, 2, 5))
    assert (x1[0] == x2[0]).all() and (x1[1] == x2[1]).all()


def test_small_images_are_padded_with_ignore():
    image, mask = _sample(20, 30)
    out, m = TrainTransform(64, scale=(1.0, 1.0), hflip=False, seed=0)(image, mask)
    assert out.shape == (64, 64, 3)
    assert (m[:20, :30] == mask).all() and (m[20:] == 255).all() and (m[:, 30:] == 255).all()
    assert (out[20:] == 0).all()


def test_val_transform():
    image, mask = _sample(197, 233)
    same = ValTransform()(image, mask)
    assert (same[0] == image).all() and (same[1] == mask).all()
    out, m = ValTransform(multiple=32)(image, mask)
    assert out.shape == (224, 256, 3) and (out[:197, :233] == image).all()
    assert (m[197:] == 255).all() and (m[:197, :233] == mask).all()
    out, m = ValTransform(size=128)(image, mask)
    assert out.shape == (128, 128, 3) and (m == mask[34:162, 52:180]).all()
    assert ValTransform(min_size=256)(image, mask)[1].shape == (256, 256)


def test_bad_inputs_raise_data_error():
    image, mask = _sample()
    with pytest.raises(DataError):
        TrainTransform(32)(image, mask[:10])
    with pytest.raises(DataError):
        ValTransform()(image.astype(np.float32), mask)
    with pytest.raises(DataError):
        TrainTransform(32, scale=(1.2, 0.8))
