"""A land-cover-like dataset end to end: float32 3-band GeoTIFF tiles of two sizes with a
GDAL nodata border (brain MRI slices as the signal) train, eval and predict; the masks
`segdeploy predict` writes score what `segdeploy eval` reports, nodata pixels ignored."""

from __future__ import annotations

import json

import numpy as np
import pytest
from own_data_folders import make_geotiff_folder
from PIL import Image

from segdeploy.cli.main import main
from segdeploy.reference_models.checkpoint import load_checkpoint

pytest.importorskip("tifffile")
pytestmark = pytest.mark.slow

TRAIN = ["--width", "0.125", "--image-size", "64", "--batch-size", "4", "--device", "cpu",
         "--no-progress", "--lr", "3e-3", "--epochs", "4"]


@pytest.fixture(scope="module")
def geotiff_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("geotiff_model")
    root = make_geotiff_folder(folder / "tiles", n=14)
    ckpt = folder / "tiles.pt"
    main(["train", "unet", "--data", str(root), *TRAIN, "-o", str(ckpt)])
    return root, ckpt


def test_training_says_once_that_nodata_is_ignored_and_keeps_it_out_of_the_window(
        tmp_path, capsys):
    root = make_geotiff_folder(tmp_path / "tiles", n=6)
    main(["train", "unet", "--data", str(root), *TRAIN[:-1], "1", "-o", str(tmp_path / "a.pt")])
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("GDAL nodata value (-99999)") == 1, text
    window = load_checkpoint(tmp_path / "a.pt").card.intensity_mapping()
    assert window.kind == "window" and window.low > 0


def test_predict_masks_score_what_eval_reports_on_float_geotiffs(geotiff_model, tmp_path):
    from segdeploy.data import get_dataset
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.metrics import ConfusionMatrix

    root, ckpt = geotiff_model
    main(["eval", str(ckpt), "--json", str(tmp_path / "eval.json"), "--no-progress"])
    reported = json.loads((tmp_path / "eval.json").read_text())["metrics"]["mean_iou"]
    onnx = run_export(ckpt, ExportOptions(output=str(tmp_path / "tiles.onnx"), opset=17,
                                          fp16=False, check_sizes=["1x3x133x150"],
                                          trt_check=False)).onnx_path
    val = get_dataset(root, "val")
    files = [str(val.layout.pairs[s].image) for s in val.stems]
    main(["predict", "-e", str(onnx), *files, "-o", str(tmp_path / "masks"), "--threads", "1"])
    cm = ConfusionMatrix(3)
    for i, stem in enumerate(val.stems):
        pred = np.asarray(Image.open(tmp_path / "masks" / f"{stem}.png"))
        _, mask = val[i]  # nodata pixels are 255 here
        assert (mask == 255).any()
        cm.update(pred, mask)
    predicted = cm.compute()["mean_iou"]
    print(f"geotiff val mIoU: eval {reported:.4f}, predict {predicted:.4f}")
    assert reported > 0.5
    assert abs(predicted - reported) < 0.005, (predicted, reported)
