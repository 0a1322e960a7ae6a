"""Segmenter on the real `unet_valid`: its output is centred only on sizes that pool evenly,
so Segmenter must choose such sizes (regression: 197x233 once failed to cover the image)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from segdeploy.geometry import unet_valid_margin  # noqa: E402
from segdeploy.manifest import ExportInfo  # noqa: E402
from segdeploy.reference_models import get_model  # noqa: E402
from segdeploy.reference_models.checkpoint import card_from_model  # noqa: E402
from segdeploy.runtime import Segmenter  # noqa: E402


@pytest.fixture(scope="module")
def valid_unet(tmp_path_factory):
    torch.manual_seed(0)
    net = get_model("unet_valid", num_classes=3, width=0.0625, in_channels=1).eval()
    path = tmp_path_factory.mktemp("valid") / "unet_valid.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, 1, 205, 221),), str(path), dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n", 2: "h", 3: "w"},
                                        "logits": {0: "n", 2: "h", 3: "w"}})
    card = card_from_model(net, classes=["bg", "grey", "white"], mean=[0.2], std=[0.3],
                           channel_mode="grey", train_size=[197, 233], trained_on={},
                           metrics={})
    proto = onnx.load(str(path))
    for key, value in ExportInfo(card=card, opset=17).to_metadata_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, str(path))
    return path, net


@pytest.mark.parametrize("size", [(197, 233), (64, 80), (251, 199)])
def test_valid_unet_covers_odd_images_and_matches_pytorch(valid_unet, size):
    path, net = valid_unet
    image = np.random.default_rng(1).integers(0, 256, size, dtype=np.uint8)
    with Segmenter.load(path) as seg:
        assert seg._margin == (unet_valid_margin(), unet_valid_margin())
        logits = seg.image_logits(image)
    assert logits.shape == (3, *size)
    # PyTorch on the same reflection-padded input Segmenter chose: the image sits at the margin.
    m = unet_valid_margin()
    x = (image.astype(np.float32) / 255 - 0.2) / 0.3
    h, w = size
    in_h = 188 + -(-(h + 2 * m - 188) // 16) * 16
    in_w = 188 + -(-(w + 2 * m - 188) // 16) * 16
    padded = np.pad(x, ((m, in_h - h - m), (m, in_w - w - m)), mode="reflect")
    with torch.no_grad():
        ref = net(torch.from_numpy(padded)[None, None])[0].numpy()
    np.testing.assert_allclose(logits, ref[:, :h, :w], atol=2e-4)


def test_tiling_a_valid_unet_keeps_the_untiled_masks(valid_unet):
    """Tiles of valid sizes (188 + 16k), steps on the stride and the untiled run's pooling
    phase: tiled == untiled away from the image border, whose mirror padding differs (tiles
    rounded to the stride shifted the masks by 2 px: 92.5% on a trained valid U-Net)."""
    from test_tiling_agreement import _mosaic

    path, _ = valid_unet
    image = _mosaic(400, 520)[..., 0]
    inner = (slice(100, -100), slice(100, -100))  # beyond the 92-px margin from the border
    with Segmenter.load(path) as seg:
        untiled = seg.predict(image)
        for tile, overlap in ((300, 92), (236, 100), (400, None)):
            tiled = seg.predict_tiled(image, tile=tile, overlap=overlap)
            assert tiled.shape == untiled.shape
            agreement = float((tiled[inner] == untiled[inner]).mean())
            assert agreement >= 0.999, (tile, overlap, agreement)
