"""Users' own data as labelling tools and instruments write it: a CVAT "Segmentation mask
1.1" export (labelmap.txt + RGB colour masks + default.txt), 16-bit TIFFs with hot pixels,
EXIF-rotated phone JPEGs; class discovery, sparse ids, --num-classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from own_data_folders import LABELMAP, ids, make_cvat, make_tiff_folder
from PIL import Image

from segdeploy.data import check_classes, get_dataset
from segdeploy.errors import DataError, UsageError
from segdeploy.manifest import ModelCard

tifffile = pytest.importorskip("tifffile")

def test_cvat_export_colours_become_ids_and_a_split_is_made(tmp_path):
    root = make_cvat(tmp_path / "cvat")
    train, val = get_dataset(root, "train"), get_dataset(root, "val")
    assert train.classes == ["background", "left", "right"] and train.classes_from == \
        "labelmap.txt"
    assert (len(train), len(val)) == (6, 1) and val.stems == ["frame_000004"]
    image, mask = val[0]
    assert image.shape == (32, 40, 3) and (mask == ids(4)).all()
    src = train.describe()["source"]
    assert src["layout"] == "cvat" and "default.txt has no train/val split" in src["split_from"]
    assert "default.txt has no train/val split" in (train.split_note or "")
    assert not any("train/val split" in w for w in train.warnings)  # a note, said once


def test_cvat_unused_labelmap_colour_warns(tmp_path):
    root = make_cvat(tmp_path / "cvat")
    (root / "labelmap.txt").write_text(LABELMAP + "tumour:255,255,0::\n")
    ds = get_dataset(root)
    assert ds.classes[-1] == "tumour" and ds.num_classes == 4
    assert any("tumour (255,255,0), which no mask uses" in w for w in ds.warnings)


def test_cvat_mask_colour_missing_from_labelmap_names_file_and_colour(tmp_path):
    root = make_cvat(tmp_path / "cvat")
    bad = np.array(Image.open(root / "SegmentationClass" / "frame_000002.png"))
    bad[1, 3] = (9, 9, 9)
    Image.fromarray(bad).save(root / "SegmentationClass" / "frame_000002.png")
    with pytest.raises(DataError, match=r"frame_000002\.png has colour 9,9,9 .*x=3, y=1.*"
                                        r"labelmap\.txt does not list"):
        _ = get_dataset(root).warnings


def test_colour_masks_without_a_labelmap_say_how_to_add_one(tmp_path):
    root = make_cvat(tmp_path / "cvat")
    (root / "labelmap.txt").unlink()
    with pytest.raises(DataError, match="colours, not class ids.*labelmap.txt.*NAME:R,G,B"):
        _ = get_dataset(root).classes


def test_labelmap_lines_are_checked(tmp_path):
    root = make_cvat(tmp_path / "cvat")
    (root / "labelmap.txt").write_text("background:0,0,0::\ncar:255,0::\n")
    with pytest.raises(DataError, match="line 2 'car:255,0::' is not NAME:R,G,B"):
        get_dataset(root)


def make_plain_ids(root: Path, top: int, stray: int | None = None, n: int = 6) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n):
        m = np.minimum(ids(i), top).astype(np.uint8)
        m[28:, 30:] = top
        if stray is not None and i == 3:
            m[0, 0] = stray
        Image.fromarray(np.full((32, 40), 90, np.uint8)).save(root / "images" / f"s{i}.png")
        Image.fromarray(m, "L").save(root / "masks" / f"s{i}.png")
    return root


def test_voc_like_ids_0_to_3_get_four_classes_and_num_classes_is_accepted(tmp_path):
    from segdeploy.training.setup import resolve_classes

    root = make_plain_ids(tmp_path / "d", top=3)
    ds = get_dataset(root)
    assert ds.classes == ["class_0", "class_1", "class_2", "class_3"] and not ds.warnings
    assert resolve_classes(ds, None) == (4, ds.classes)
    assert resolve_classes(ds, 4) == (4, ds.classes)
    assert resolve_classes(ds, 6)[1][-1] == "class_5"
    with pytest.raises(DataError, match="--num-classes 3 is too few.*ids up to 3"):
        resolve_classes(ds, 3)


def test_one_stray_pixel_of_200_warns_about_a_201_class_model(tmp_path):
    ds = get_dataset(make_plain_ids(tmp_path / "d", top=2, stray=200))
    assert ds.num_classes == 201
    (note,) = ds.warnings
    assert "use 4 of the ids 0..200" in note and "201 classes" in note
    assert "id 200 has 1 pixel(s)" in note and "s3.png" in note


def test_classes_check_names_both_lists():
    brain = ModelCard(arch="unet", num_classes=3, in_channels=1, mean=[0.5], std=[0.2],
                      classes=["background", "grey matter", "white matter"])

    class Data:
        classes = ["background", "nucleus"]

    with pytest.raises(UsageError, match=r"2 classes \(background, nucleus\) but the model "
                                         r"predicts 3 \(background, grey matter, white"):
        check_classes(brain, Data(), "nuclei")
    Data.classes = ["bg", "a", "b"]
    with pytest.raises(UsageError, match="--classes-by-count"):
        check_classes(brain, Data(), "mine")
    check_classes(brain, Data(), "mine", by_count=True)
    generic = ModelCard(arch="unet", num_classes=5, in_channels=1, mean=[0.5], std=[0.2],
                        classes=[f"class_{i}" for i in range(5)])
    Data.classes = ["class_0", "class_1", "class_2"]  # trained with --num-classes 5
    check_classes(generic, Data(), "mine")


def test_16bit_folder_uses_the_training_window_for_both_splits(tmp_path):
    root = make_tiff_folder(tmp_path / "tif")
    train, val = get_dataset(root, "train"), get_dataset(root, "val")
    w = train.intensity
    assert w.kind == "window" and 900 < w.low < 1100 and 2500 < w.high < 5000
    assert "percentiles" in w.source
    assert val.intensity == w  # measured on the training split, whichever split reads
    image, mask = val[0]
    assert image.dtype == np.uint8 and image[mask == 1].mean() > image[mask == 0].mean() + 80
    assert train.describe()["intensity"]["kind"] == "window"
    fixed = get_dataset(root, "val", intensity={"kind": "window", "low": 0, "high": 65535})
    assert np.median(fixed[0][0]) < 40  # the whole 16-bit range: a dark image


def test_exif_rotated_phone_jpeg_pairs_with_its_mask(tmp_path):
    root = tmp_path / "phone"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(3):
        shown_mask = np.zeros((30, 50), np.uint8)
        shown_mask[:10, :20] = 1
        shown = np.where(shown_mask[:, :, None] == 1, 230, 30).astype(np.uint8).repeat(3, 2)
        img = Image.fromarray(np.ascontiguousarray(np.rot90(shown, 1)))  # stored sideways
        exif = img.getexif()
        exif[0x0112] = 6
        img.save(root / "images" / f"p{i}.jpg", exif=exif.tobytes())
        Image.fromarray(shown_mask, "L").save(root / "masks" / f"p{i}.png")  # as labelled
    ds = get_dataset(root)
    image, mask = ds[0]
    assert image.shape == (30, 50, 3) and mask.shape == (30, 50)
    assert image[mask == 1].mean() > 200 and ds.describe()["image_sizes"] == [[30, 50]]
