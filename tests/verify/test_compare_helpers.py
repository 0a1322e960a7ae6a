"""Pure helpers of `verify`: resizing pairs, default and fitted sizes, label offsets."""

from __future__ import annotations

import numpy as np

from segdeploy.geometry import unet_valid_margin
from segdeploy.manifest import ModelCard
from segdeploy.verify.compare import default_sizes, fit_size, label_offset, resize_pair


def _card(**kw) -> ModelCard:
    base = dict(arch="unet", num_classes=2, classes=["a", "b"], in_channels=1, mean=[0.5],
                std=[0.25], min_size=16, size_multiple=1)
    return ModelCard(**{**base, **kw})


def test_resize_pair_keeps_mask_values() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mask = rng.choice(np.array([0, 1, 255], dtype=np.uint8), size=(20, 30))
    im2, m2 = resize_pair(image, mask, (11, 17))
    assert im2.shape == (11, 17, 3) and im2.dtype == np.uint8 and m2.shape == (11, 17)
    assert set(np.unique(m2)) <= {0, 1, 255}  # nearest: no blended labels
    same_im, same_m = resize_pair(image, mask, (20, 30))
    assert same_im is image and same_m is mask


def test_fit_and_default_sizes() -> None:
    card = _card(min_size=64, size_multiple=32)
    assert fit_size((40, 100), card) == (64, 128)
    assert fit_size((400, 100), card, (256, None)) == (256, 128)
    sizes = default_sizes((197, 233), _card())
    assert sizes[0] == (197, 233) and len(sizes) == 3
    assert all(h % 2 == 1 and w % 2 == 1 for h, w in sizes)  # odd sizes test dynamic shapes


def test_label_offset() -> None:
    assert label_offset(_card(), (50, 60), (50, 60)) == (0, 0)
    valid = _card(arch="unet_valid", config={"depth": 4}, output_mode="valid")
    m = unet_valid_margin(4)
    assert label_offset(valid, (300, 300), (100, 100)) == (m, m)
    assert label_offset(_card(arch="other"), (50, 60), (46, 50)) == (2, 5)
