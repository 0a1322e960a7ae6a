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


def test_heavy_clipping_is_said_once(seg) -> None:
    import warnings

    from segdeploy.runtime.image_input import ClippingNotice

    if seg.intensity.kind != "window":
        pytest.skip("this model has no intensity window")
    high = float(seg.intensity.high)
    inside = np.full((64, 80), (float(seg.intensity.low) + high) / 2, np.float32)
    wide = (np.linspace(0, 40 * high, 64 * 80, dtype=np.float32)).reshape(64, 80)
    with warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("always")
        seg.predict(inside)  # within the window: nothing to say
        assert not [w for w in told if issubclass(w.category, ClippingNotice)]
        seg.predict(wide)  # ~97% above the window: said once
        seg.predict(wide)
    notices = [w for w in told if issubclass(w.category, ClippingNotice)]
    assert len(notices) == 1 and "outside the intensity window" in str(notices[0].message)
