"""What Segmenter.predict accepts (arrays, paths, PIL images) and the errors for channel-first
arrays, which point to seg.logits() instead of "image has 100 channels"."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdeploy.errors import InputError
from segdeploy.runtime import Segmenter


@pytest.fixture
def seg(brain_onnx):
    with Segmenter.load(brain_onnx[0]) as s:
        yield s


def test_paths_and_pil_images_give_the_arrays_masks(seg, tmp_path: Path) -> None:
    from segdeploy.data import get_dataset

    image = get_dataset("brain", "val")[2][0]
    path = tmp_path / "slice.png"
    Image.fromarray(image[..., 0]).save(path)
    expected = seg.predict(image)
    assert np.array_equal(seg.predict(path), expected)
    assert np.array_equal(seg.predict(str(path)), expected)
    with Image.open(path) as pil:
        assert np.array_equal(seg.predict(pil), expected)
        assert np.array_equal(seg.predict(pil.convert("RGB")), expected)  # grey model: L
    assert all(np.array_equal(m, expected) for m in seg.predict([path, image]))
    help_text = Segmenter.__doc__ or ""
    assert "Segmenter.load(" in help_text and ">>>" in help_text
    for name in ("close", "classes", "num_classes", "mask_dtype", "max_size", "predict_tiled"):
        assert getattr(Segmenter, name).__doc__, f"Segmenter.{name} has no docstring"


def test_channel_first_arrays_point_to_logits(seg) -> None:
    chw = np.zeros((1, 100, 120), np.float32)
    with pytest.raises(InputError, match=r"channels first .*transpose\(1, 2, 0\).*logits"):
        seg.predict(chw)
    nchw = np.zeros((2, 1, 100, 120), np.float32)
    with pytest.raises(InputError, match=r"normalised N x C x H x W tensor.*seg.logits"):
        seg.predict(nchw)
    with pytest.raises(InputError, match="a file path or a PIL image"):
        seg.predict(object())
    assert seg.logits(np.zeros((1, 1, 96, 112), np.float32)).shape[:2] == (1, 3)
