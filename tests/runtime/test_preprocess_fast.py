"""The fast host paths of Segmenter.predict give exactly what the plain numpy ones gave:
argmax_classes == np.argmax (ties, NaN, any K, batches) and to_model_input == normalize."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.imaging import normalize
from segdeploy.runtime.preprocess import argmax_classes, to_model_input


def test_one_channel_is_a_binary_head_thresholded() -> None:
    logits = np.array([[[[-1.0, 0.0, 0.2, 0.7]]]], np.float32)
    assert argmax_classes(logits).tolist() == [[[0, 0, 1, 1]]]  # a logit: above 0
    assert argmax_classes(logits, np.int32, 0.5).tolist() == [[[0, 0, 0, 1]]]  # a sigmoid


@pytest.mark.parametrize("k", [2, 3, 21, 300])
@pytest.mark.parametrize("shape", [(1, 37, 53), (3, 8, 9)])
def test_argmax_classes_is_np_argmax(k: int, shape: tuple[int, int, int]) -> None:
    rng = np.random.default_rng(k)
    n, h, w = shape
    logits = rng.standard_normal((n, k, h, w)).astype(np.float32)
    logits[:, :, :3, :3] = 0.5  # every class tied: the first one wins
    logits[0, k // 2, 4, 4:6] = logits[0, k - 1, 4, 4:6] = 9.0  # a tie of two maxima
    for dtype in ([np.uint8, np.int32] if k < 256 else [np.int32]):
        got = argmax_classes(logits, dtype)
        want = np.argmax(logits, axis=1).astype(dtype)
        assert got.dtype == np.dtype(dtype) and got.shape == (n, h, w)
        np.testing.assert_array_equal(got, want)
    if k > 1:
        assert argmax_classes(logits)[0, 4, 4] == k // 2


def test_argmax_classes_on_cropped_views_fp16_and_nan() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 5, 40, 41)).astype(np.float16)
    view = logits[..., 3:30, 5:39]  # what Segmenter crops before the argmax
    np.testing.assert_array_equal(argmax_classes(view), np.argmax(view, axis=1))
    with_nan = logits.astype(np.float32)
    with_nan[1, 3, 7, 7] = np.nan  # np.argmax returns the first NaN
    got = argmax_classes(with_nan)
    np.testing.assert_array_equal(got, np.argmax(with_nan, axis=1).astype(np.uint8))
    assert got[1, 7, 7] == 3


@pytest.mark.parametrize("channels", [1, 3])
def test_to_model_input_is_normalize(channels: int) -> None:
    rng = np.random.default_rng(channels)
    batch = rng.integers(0, 256, (2, 31, 17, channels), dtype=np.uint8)
    batch[0, 0, :3] = [[0] * channels, [255] * channels, [128] * channels]
    mean, std = [0.485, 0.456, 0.406][:channels], [0.229, 0.224, 0.225][:channels]
    got = to_model_input(batch, dtype=np.dtype(np.float32), layout="NCHW", mean=mean, std=std)
    want = np.stack([normalize(b, mean, std) for b in batch])
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    half = to_model_input(batch, dtype=np.dtype(np.float16), layout="NCHW", mean=mean,
                          std=std)
    np.testing.assert_array_equal(half, want.astype(np.float16))


def test_segmenter_masks_are_np_argmax_of_its_logits_in_one_and_many_chunks(tiny_model) -> None:
    from segdeploy.runtime import Segmenter

    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (3, 30, 29, 3), dtype=np.uint8)
    dynamic, _ = tiny_model(num_classes=5)
    static, _ = tiny_model(static=True)  # batch 1 only: a batch of 3 runs in 3 chunks
    for path in (dynamic, static):
        with Segmenter.load(path, threads=1) as seg:
            masks = seg.predict(batch)
            assert masks.shape == (3, 30, 29) and masks.dtype == np.uint8
            for image, mask in zip(batch, masks, strict=True):
                logits = seg.image_logits(image)  # cropped to the image, padding excluded
                np.testing.assert_array_equal(mask, np.argmax(logits, axis=0))
                np.testing.assert_array_equal(mask, seg.predict(image))
