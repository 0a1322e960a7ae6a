"""Own data end to end: a U-Net trained on 16-bit TIFFs with hot pixels, evaluated, exported
and run by `segdeploy predict`; the masks predict writes score what eval reports. Also the
augmentation flags recorded in the checkpoint, and eval's class checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_run import cli_fails as _fails
from own_data_folders import make_tiff_folder
from PIL import Image

from segdeploy.cli.main import main
from segdeploy.reference_models.checkpoint import load_checkpoint

pytest.importorskip("tifffile")
pytestmark = pytest.mark.slow

TRAIN = ["--width", "0.125", "--image-size", "48", "--batch-size", "4", "--device", "cpu",
         "--no-progress", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def tiff_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiff_model")
    root = make_tiff_folder(folder / "cells", n=15, hw=(61, 75))
    ckpt = folder / "cells.pt"
    main(["train", "unet", "--data", str(root), *TRAIN, "--epochs", "4", "--no-hflip",
          "--vflip", "--scale", "0.9,1.1", "-o", str(ckpt)])
    return root, ckpt


def test_checkpoint_records_intensity_window_and_augmentation(tiff_model):
    _, ckpt = tiff_model
    c = load_checkpoint(ckpt)
    card = c.card
    window = card.intensity_mapping()
    assert window.kind == "window" and 900 < window.low < window.high < 65535 * 0.1
    assert card.trained_on["augmentation"] == {"hflip": False, "vflip": True,
                                               "scale": [0.9, 1.1], "crop": [48, 48]}
    cfg = c.extra["train_config"]
    assert (cfg["hflip"], cfg["vflip"], cfg["scale"]) == (False, True, [0.9, 1.1])


def test_predict_masks_score_what_eval_reports_on_16bit_val_images(tiff_model, tmp_path,
                                                                    capsys):
    from segdeploy.data import get_dataset
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.metrics import ConfusionMatrix

    root, ckpt = tiff_model
    main(["eval", str(ckpt), "--json", str(tmp_path / "eval.json"), "--no-progress"])
    reported = json.loads((tmp_path / "eval.json").read_text())["metrics"]["mean_iou"]
    onnx = run_export(ckpt, ExportOptions(output=str(tmp_path / "cells.onnx"), opset=17,
                                          fp16=False, check_sizes=["1x1x61x75"],
                                          trt_check=False)).onnx_path
    val = get_dataset(root, "val")
    files = [str(val.layout.pairs[s].image) for s in val.stems]
    main(["predict", "-e", str(onnx), *files, "-o", str(tmp_path / "masks"), "--threads", "1"])
    cm = ConfusionMatrix(2)
    for stem in val.stems:
        pred = np.asarray(Image.open(tmp_path / "masks" / f"{stem}.png"))
        cm.update(pred, np.asarray(Image.open(val.layout.pairs[stem].mask)))
    predicted = cm.compute()["mean_iou"]
    assert reported > 0.5
    assert abs(predicted - reported) < 0.005, (predicted, reported)


def test_eval_refuses_another_models_classes_naming_both(brain_checkpoint, tiff_model, capsys):
    root, _ = tiff_model
    err = _fails(capsys, ["eval", str(brain_checkpoint), "--data", "nuclei", "--no-progress"])
    assert "dataset 'nuclei' has 2 classes (background, nucleus)" in err
    assert "the model predicts 3 (background, grey matter, white matter)" in err
    err = _fails(capsys, ["eval", str(brain_checkpoint), "--data", str(root), "--no-progress"])
    assert "2 classes (class_0, class_1)" in err


def test_num_classes_above_the_ids_and_eval_on_the_same_folder(tiff_model, tmp_path, capsys):
    root, _ = tiff_model
    ckpt = tmp_path / "five.pt"
    main(["train", "unet", "--data", str(root), *TRAIN, "--epochs", "1", "--num-classes", "5",
          "--limit-train", "4", "-o", str(ckpt)])
    assert load_checkpoint(ckpt).card.classes[-1] == "class_4"
    main(["eval", str(ckpt), "--no-progress", "--limit", "1"])
    # --num-classes 1 on a 2-class folder: a binary head (one logit), not "too few"
    one = tmp_path / "one.pt"
    main(["train", "unet", "--data", str(root), *TRAIN, "--epochs", "1", "--num-classes", "1",
          "--limit-train", "4", "-o", str(one)])
    card = load_checkpoint(one).card
    assert card.output_channels == 1 and card.num_classes == 2 and card.threshold == 0.0


def test_train_on_a_cvat_export_prints_warnings_and_bad_data_is_one_line(tmp_path, capsys):
    from own_data_folders import LABELMAP, make_cvat

    root = make_cvat(tmp_path / "cvat")
    (root / "labelmap.txt").write_text(LABELMAP + "tumour:255,255,0::\n")
    small = ["--width", "0.125", "--image-size", "32", "--batch-size", "2", "--device", "cpu",
             "--no-progress", "--epochs", "1", "--limit-train", "2", "--no-hflip"]
    main(["train", "unet", "--data", str(root), *small, "-o", str(tmp_path / "c.pt")])
    out = capsys.readouterr().out
    assert "warning" in out and "tumour (255,255,0), which no mask uses" in out
    assert "default.txt has no train/val split" in out
    card = load_checkpoint(tmp_path / "c.pt").card
    assert card.classes == ["background", "left", "right", "tumour"]
    assert "default.txt has no train/val split" in card.trained_on["source"]["split_from"]
    (root / "labelmap.txt").unlink()
    err = _fails(capsys, ["train", "unet", "--data", str(root), *small,
                          "-o", str(tmp_path / "d.pt")])
    assert "colours, not class ids" in err and "labelmap.txt" in err
    assert len(err.strip().splitlines()) == 1 and "Fix:" in err


def test_verify_refuses_data_of_other_classes(brain_checkpoint, brain_onnx, capsys):
    err = _fails(capsys, ["verify", str(brain_checkpoint), "-e", str(brain_onnx[0]),
                          "--data", "nuclei", "--max-images", "1", "--no-progress"])
    assert "2 classes (background, nucleus)" in err and "grey matter" in err
