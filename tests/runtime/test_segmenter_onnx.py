"""Segmenter on ONNX Runtime against the PyTorch model it was exported from."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_models import MEAN3, STD3, torch_reference

from segdeploy.errors import ArtifactError, InputError, UsageError
from segdeploy.runtime import Segmenter


@pytest.mark.parametrize("hw", [(45, 67), (33, 35), (8, 9), (101, 77)])
def test_predict_matches_pytorch_at_odd_sizes(tiny_model, hw):
    path, net = tiny_model()
    image = np.random.default_rng(hw[0]).integers(0, 256, (*hw, 3), dtype=np.uint8)
    # the unpadded size, as PyTorch runs it (stride padding: test_segmenter_own_data.py)
    with Segmenter.load(path, threads=1, pad_to_stride=False) as seg:
        mask = seg.predict(image)
        logits = seg.image_logits(image)
    ref = torch_reference(net, image, MEAN3, STD3)
    assert mask.shape == hw and mask.dtype == np.uint8
    np.testing.assert_allclose(logits, ref, atol=1e-4)
    assert (mask == ref.argmax(0)).mean() > 0.999


def test_small_images_are_padded_to_min_size(tiny_model):
    path, net = tiny_model(min_size=16, size_multiple=4)
    image = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    with Segmenter.load(path) as seg:
        mask = seg.predict(image)
    assert mask.shape == (5, 7)
    assert mask.max() < 3


def test_batch_and_list_inputs(tiny_model):
    path, _ = tiny_model()
    rng = np.random.default_rng(2)
    batch = rng.integers(0, 256, (3, 20, 30, 3), dtype=np.uint8)
    other = rng.integers(0, 256, (17, 19, 3), dtype=np.uint8)
    with Segmenter.load(path) as seg:
        singles = [seg.predict(b) for b in batch]
        masks = seg.predict(batch)
        listed = seg.predict([batch[0], other, batch[1]])
        single_other = seg.predict(other)
    assert masks.shape == (3, 20, 30)
    for a, b in zip(masks, singles, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [m.shape for m in listed] == [(20, 30), (17, 19), (20, 30)]
    np.testing.assert_array_equal(listed[1], single_other)
    np.testing.assert_array_equal(listed[2], singles[1])


def test_grey_model_takes_hw_and_hw1(tiny_model):
    path, net = tiny_model(in_channels=1)
    image = np.random.default_rng(3).integers(0, 256, (29, 31), dtype=np.uint8)
    with Segmenter.load(path, pad_to_stride=False) as seg:
        a = seg.predict(image)
        b = seg.predict(image[:, :, None])
        with pytest.raises(InputError, match="3 channels"):
            seg.predict(np.stack([image] * 3, axis=2))
    ref = torch_reference(net, image[:, :, None], [0.5], [0.25]).argmax(0)
    np.testing.assert_array_equal(a, b)
    assert (a == ref).mean() > 0.999


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_uint8_graph_with_argmax_equals_float_graph(tiny_model, rgb_image, layout):
    float_path, _ = tiny_model()
    u8_path, _ = tiny_model(uint8=True, layout=layout, argmax=True)
    with Segmenter.load(float_path) as a, Segmenter.load(u8_path) as b:
        assert b._mask_name == "mask"
        expected = a.predict(rgb_image)
        got = b.predict(rgb_image)
        np.testing.assert_allclose(b.image_logits(rgb_image), a.image_logits(rgb_image),
                                   atol=1e-4)
        with pytest.raises(UsageError, match="uint8"):
            b.logits(np.zeros((1, 3, 16, 16), np.float32))
    assert (got == expected).mean() > 0.999


def test_valid_mode_model_covers_the_image(tiny_model, rgb_image):
    path, net = tiny_model(valid=True)
    with Segmenter.load(path) as seg:
        assert seg._margin == (2, 2)  # two valid 3x3 convs consume 2 pixels per side
        logits = seg.image_logits(rgb_image)
    padded = np.pad(rgb_image, ((2, 2), (2, 2), (0, 0)), mode="reflect")
    ref = torch_reference(net, padded, MEAN3, STD3)
    assert logits.shape == (3, *rgb_image.shape[:2])
    np.testing.assert_allclose(logits, ref, atol=1e-4)


def test_logits_returns_raw_output(tiny_model):
    path, net = tiny_model()
    import torch

    x = np.random.default_rng(4).standard_normal((2, 3, 19, 23)).astype(np.float32)
    with Segmenter.load(path) as seg:
        out = seg.logits(x)
        with pytest.raises(InputError, match="NaN"):
            bad = x.copy()
            bad[0, 0, 3, 3] = np.nan
            seg.logits(bad)
        with pytest.raises(InputError, match="axis 1"):
            seg.logits(np.zeros((1, 4, 16, 16), np.float32))
        with pytest.raises(InputError, match="dtype float64"):
            seg.logits(x.astype(np.float64))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_bad_images_raise_input_errors(tiny_model, rgb_image):
    path, _ = tiny_model()
    with Segmenter.load(path) as seg:
        with pytest.raises(InputError, match="dtype complex64"):  # float is mapped, not this
            seg.predict(rgb_image.astype(np.complex64))
        with pytest.raises(InputError, match="2 channels"):
            seg.predict(rgb_image[:, :, :2])
        with pytest.raises(InputError, match="cannot read image image.png"):
            seg.predict("image.png")  # a string is a path
        with pytest.raises(InputError, match="a file path or a PIL image"):
            seg.predict(3.5)
        with pytest.raises(InputError, match="shape"):
            seg.predict(np.zeros((1, 2, 3, 4, 5), np.uint8))


def test_static_shape_model_rejects_large_images_with_tiling_hint(tiny_model):
    path, _ = tiny_model(static=True)  # exported at 37x41 without dynamic axes
    with Segmenter.load(path) as seg:
        small = seg.predict(np.zeros((30, 30, 3), np.uint8))
        assert small.shape == (30, 30)
        with pytest.raises(InputError, match="predict_tiled"):
            seg.predict(np.zeros((60, 60, 3), np.uint8))


def test_load_errors(tmp_path, tiny_model):
    path, _ = tiny_model()
    with pytest.raises(ArtifactError, match="does not exist"):
        Segmenter.load(tmp_path / "missing.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        Segmenter.load(truncated)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file at all")
    with pytest.raises(ArtifactError):
        Segmenter.load(garbage)
    bare, _ = tiny_model(with_metadata=False)
    with pytest.raises(ArtifactError, match="no segdeploy metadata"):
        Segmenter.load(bare)
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    with pytest.raises(UsageError, match="backend"):
        Segmenter.load(odd)
    with pytest.raises(UsageError, match="unknown backend"):
        Segmenter.load(path, backend="tflite")
