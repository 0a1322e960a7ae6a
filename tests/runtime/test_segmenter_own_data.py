"""Segmenter on data as it comes: 16-bit / float arrays mapped by the card, stride-aligned
padding, EXIF-rotated phone photos through `segdeploy predict`."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from tiny_models import torch_reference

from segdeploy.cli.main import main
from segdeploy.imaging import window_to_uint8
from segdeploy.runtime import Segmenter

tifffile = pytest.importorskip("tifffile")


def test_uint16_and_float_images_get_the_cards_window(tiny_model):
    model, _ = tiny_model(in_channels=1, intensity_window=(1000.0, 3000.0))
    rng = np.random.default_rng(0)
    raw = (1000 + rng.integers(0, 2000, (40, 52))).astype(np.uint16)
    raw[3, 4] = 65535  # a hot pixel
    with Segmenter.load(model) as seg:
        assert seg.intensity.kind == "window" and seg.intensity.high == 3000.0
        mapped = window_to_uint8(raw, 1000, 3000)
        expected = seg.predict(mapped)
        np.testing.assert_array_equal(seg.predict(raw), expected)
        np.testing.assert_array_equal(seg.predict(raw.astype(np.float32)), expected)
        batch = seg.predict(np.stack([raw, raw])[..., None])
        np.testing.assert_array_equal(batch[1], expected)
        assert seg.predict([raw, mapped])[0].shape == (40, 52)


def test_stride_aligned_padding_and_the_old_behaviour(tiny_model, rgb_image):
    model, net = tiny_model(output_stride=8)
    from tiny_models import MEAN3, STD3

    padded = np.pad(rgb_image, ((0, 3), (0, 5), (0, 0)), mode="reflect")  # 45x67 -> 48x72
    want = torch_reference(net, padded, MEAN3, STD3)[:, :45, :67]
    plain = torch_reference(net, rgb_image, MEAN3, STD3)
    with Segmenter.load(model) as seg:
        assert seg.pad_to_stride
        np.testing.assert_allclose(seg.image_logits(rgb_image), want, atol=1e-4)
    with Segmenter.load(model, pad_to_stride=False) as seg:
        np.testing.assert_allclose(seg.image_logits(rgb_image), plain, atol=1e-4)


def test_predict_cli_reads_16bit_tiff_and_exif_jpeg_as_shown(tmp_path, tiny_model, capsys):
    model, _ = tiny_model(in_channels=1, intensity_window=(1000.0, 3000.0))
    raw = (1000 + np.random.default_rng(1).integers(0, 2000, (40, 52))).astype(np.uint16)
    tifffile.imwrite(tmp_path / "scan.tif", raw)
    main(["predict", "-e", str(model), str(tmp_path / "scan.tif"), "-o",
          str(tmp_path / "scan.png"), "--overlay"])
    with Segmenter.load(model) as seg:
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "scan.png")),
                                      seg.predict(raw))
    # a phone JPEG stored sideways with EXIF orientation 6: the mask comes out as shown
    model3, _ = tiny_model()
    shown = np.random.default_rng(2).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    img = Image.fromarray(np.ascontiguousarray(np.rot90(shown, 1)))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(tmp_path / "phone.jpg", quality=98, exif=exif.tobytes())
    main(["predict", "-e", str(model3), str(tmp_path / "phone.jpg"), "-o",
          str(tmp_path / "phone.png"), "--overlay"])
    assert Image.open(tmp_path / "phone.png").size == (50, 30)
    width, height = Image.open(tmp_path / "phone.overlay.png").size
    assert width == 50 and height >= 30  # as shown, plus the legend strip below
