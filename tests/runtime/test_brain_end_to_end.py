"""End to end on a real model: the session's `brain_checkpoint` U-Net, exported with
segdeploy.export, run by the torch-free runtime, compared with PyTorch on real MRI slices
at their odd 197x233 size and at cropped odd sizes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow
torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def brain_export(brain_checkpoint, tmp_path_factory):
    export = pytest.importorskip("segdeploy.export")
    out = tmp_path_factory.mktemp("brain_export") / "unet_brain.onnx"
    # one small parity size and few FP16 calibration images: the export's own tests cover
    # its checks; here it only has to produce the files
    options = export.ExportOptions(output=str(out), check_sizes=["1x1x61x75"], fp16_images=4,
                                   trt_check=False)
    return export.run_export(brain_checkpoint, options)


@pytest.fixture(scope="module")
def brain_images():
    from segdeploy.data import get_dataset

    ds = get_dataset("brain", split="val")
    picks = np.linspace(0, len(ds) - 1, 4).astype(int)
    return [ds[int(i)][0] for i in picks]


def torch_masks(checkpoint, images, *, pad_to_stride=True):
    """PyTorch masks padded as `segdeploy eval` pads (stride-aligned unless told not to)."""
    from segdeploy.reference_models.checkpoint import load_model
    from segdeploy.training.evaluate import Geometry, predict_logits

    model, card = load_model(checkpoint)
    geometry = Geometry.of(card, pad_to_stride=pad_to_stride)
    return [predict_logits(model, image, card.mean, card.std, geometry,
                           torch.device("cpu"))[0].argmax(0).numpy() for image in images]


@pytest.mark.parametrize("pad_to_stride", [True, False])
def test_onnxruntime_masks_equal_pytorch_at_odd_sizes(brain_checkpoint, brain_export,
                                                      brain_images, pad_to_stride):
    from segdeploy.runtime import Segmenter

    crops = [brain_images[1][:101, 3:80], brain_images[2][17:150, :211]]
    images = [*brain_images, *crops]
    expected = torch_masks(brain_checkpoint, images, pad_to_stride=pad_to_stride)
    with Segmenter.load(brain_export.onnx_path, threads=1, pad_to_stride=pad_to_stride) as seg:
        assert seg.num_classes == 3
        got = seg.predict(images)
    for mask, ref, image in zip(got, expected, images, strict=True):
        assert mask.shape == image.shape[:2] and mask.dtype == np.uint8
        assert (mask == ref).mean() > 0.999, image.shape


def test_fp16_onnx_and_tiles_agree_with_fp32(brain_export, brain_images):
    from segdeploy.runtime import Segmenter

    image = brain_images[1]
    with Segmenter.load(brain_export.onnx_path, threads=1) as seg:
        whole = seg.predict(image)
        tiled = seg.predict_tiled(image, tile=128, overlap=32)
    assert tiled.shape == whole.shape
    # the U-Net's receptive field is wider than 32 pixels: tiles agree, but not to the pixel
    assert (tiled == whole).mean() > 0.97
    if brain_export.fp16_path is not None:
        with Segmenter.load(brain_export.fp16_path, threads=1) as seg16:
            assert (seg16.predict(image) == whole).mean() > 0.99


def test_cli_predict_writes_palette_pngs(brain_export, brain_images, tmp_path):
    from segdeploy.cli.main import main

    folder = tmp_path / "slices"
    folder.mkdir()
    for i, image in enumerate(brain_images[:3]):
        Image.fromarray(image[:, :, 0]).save(folder / f"slice{i}.png")
    try:
        main(["predict", "-e", str(brain_export.onnx_path), str(folder), "-o",
              str(tmp_path / "masks"), "--overlay", "--threads", "1"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    for i, image in enumerate(brain_images[:3]):
        mask = Image.open(tmp_path / "masks" / f"slice{i}.png")
        assert mask.mode == "P" and mask.size == (image.shape[1], image.shape[0])
        values = np.asarray(mask)
        assert values.max() < 3 and len(np.unique(values)) > 1
        assert (tmp_path / "masks" / f"slice{i}.overlay.png").is_file()
