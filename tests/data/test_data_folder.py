"""Users' folders: plain images/ + masks/ and the VOC layout, built here with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from segdeploy.data import get_dataset
from segdeploy.data.base import channel_stats
from segdeploy.errors import DataError
from segdeploy.imaging import voc_palette


def _mask(i: int, h: int = 24, w: int = 32, top: int = 2) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    m[4:12, 3 + i % 5: 20] = 1 + i % top
    m[0, :] = 255
    return m


def _save_palette(path: Path, mask: np.ndarray) -> None:
    img = Image.fromarray(mask, "P")
    img.putpalette(voc_palette().reshape(-1).tolist())
    img.save(path)


def make_plain(root: Path, n: int = 10, grey: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        m = _mask(i)
        ids = np.where(m == 255, 0, m).astype(np.int64)[:, :, None]
        img = (rng.integers(0, 100, (24, 32, 3)) + 50 * ids).astype(np.uint8)
        Image.fromarray(img[:, :, 0] if grey else img).save(root / "images" / f"im{i:02d}.png")
        Image.fromarray(m, "L").save(root / "masks" / f"im{i:02d}.png")
    return root


def make_voc(root: Path) -> Path:
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / d).mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(6):
        img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "JPEGImages" / f"2007_{i:06d}.jpg")
        if i < 5:  # the last image is unlabelled, as many VOC images are
            _save_palette(root / "SegmentationClass" / f"2007_{i:06d}.png", _mask(i, top=15))
    (root / "ImageSets/Segmentation/train.txt").write_text("2007_000000\n2007_000002\n"
                                                            "2007_000004\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("2007_000001\n2007_000003\n")
    return root


def test_plain_layout_split_classes_and_pixels(tmp_path):
    root = make_plain(tmp_path / "mydata")
    train, val = get_dataset(root, "train"), get_dataset(str(root), "val")
    assert (len(train), len(val)) == (8, 2)
    assert not set(train.stems) & set(val.stems)
    assert get_dataset(root, "val").stems == val.stems == ["im04", "im09"]
    assert train.classes == ["class_0", "class_1", "class_2"]
    assert train.channel_mode == "rgb" and train.in_channels == 3 and train.name == "mydata"
    image, mask = train[1]
    assert image.shape == (24, 32, 3) and image.dtype == np.uint8
    assert (mask == _mask(1)).all()
    d = train.describe()
    assert d["images"] == 8 and d["image_sizes"] == [[24, 32]]
    assert d["source"]["layout"] == "plain" and "every 5th" in d["source"]["split_from"]


def test_mean_std_from_the_training_split(tmp_path):
    train = get_dataset(make_plain(tmp_path / "d"), "train")
    mean, std = channel_stats([img for img, _ in train])
    assert np.allclose(train.mean, mean) and np.allclose(train.std, std)
    assert len(train.mean) == 3


def test_grey_folder_defaults_to_grey_and_grey3_replicates(tmp_path):
    root = make_plain(tmp_path / "g", grey=True)
    ds = get_dataset(root)
    assert ds.channel_mode == "grey" and ds[0][0].shape == (24, 32, 1)
    g3 = get_dataset(root, channel_mode="grey3")
    image = g3[0][0]
    assert image.shape == (24, 32, 3) and (image == ds[0][0]).all()


def test_voc_layout_palette_masks_and_split_files(tmp_path):
    root = make_voc(tmp_path / "VOC")
    train, val = get_dataset(root, "train"), get_dataset(root, "val")
    assert train.stems == ["2007_000000", "2007_000002", "2007_000004"]
    assert val.stems == ["2007_000001", "2007_000003"]
    # ids 0..5 only: not VOC's classes, so names come from the ids (not "aeroplane", ...)
    assert train.classes == [f"class_{i}" for i in range(6)] and train.classes_from == "mask ids"
    _, mask = val[1]
    assert (mask == _mask(3, top=15)).all()  # indices, not palette colours
    assert (mask[0] == 255).all()
    src = train.describe()["source"]
    assert src["layout"] == "voc" and src["unlabelled_images"] == 1
    assert src["split_from"].endswith("train.txt")


def test_voc_names_only_when_id_20_is_used(tmp_path):
    root = make_voc(tmp_path / "VOC")
    mask = _mask(0)
    mask[mask == 1] = 20
    _save_palette(root / "SegmentationClass" / "2007_000000.png", mask)
    ds = get_dataset(root)
    assert ds.classes[:2] == ["background", "aeroplane"] and ds.num_classes == 21
    assert ds.classes_from == "VOC ids"


def test_voc_ids_beyond_21_get_generic_names(tmp_path):
    root = make_voc(tmp_path / "VOC")
    mask = _mask(0)
    mask[mask == 1] = 30
    _save_palette(root / "SegmentationClass" / "2007_000000.png", mask)
    assert get_dataset(root).classes[-1] == "class_30"


def test_classes_file_names_and_checks_ids(tmp_path):
    root = make_plain(tmp_path / "c")
    (root / "classes.txt").write_text("bg\nthing\n")
    ds = get_dataset(root)
    assert ds.classes == ["bg", "thing"]
    ds[0]  # ids 0, 1 and 255 fit
    with pytest.raises(DataError, match=r"im01\.png holds class id 2"):
        ds[1]


def test_rgb_mask_is_refused_with_the_fix(tmp_path):
    root = make_plain(tmp_path / "rgb")
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(root / "masks" / "im00.png")
    with pytest.raises(DataError, match="colours, not class ids.*palette"):
        get_dataset(root)[0]


def test_size_mismatch_names_the_file(tmp_path):
    root = make_plain(tmp_path / "size")
    Image.fromarray(np.zeros((20, 32), np.uint8), "L").save(root / "masks" / "im00.png")
    with pytest.raises(DataError, match=r"im00\.png"):
        get_dataset(root)[0]


def test_binary_masks_saved_as_0_255_are_explained(tmp_path):
    root = make_plain(tmp_path / "b", n=3)
    for p in (root / "masks").iterdir():
        Image.fromarray(np.where(np.asarray(Image.open(p)) > 0, 255, 0).astype(np.uint8),
                        "L").save(p)
    with pytest.raises(DataError, match="0/1"):
        _ = get_dataset(root).classes


@pytest.mark.parametrize("case", ["missing", "no_layout", "orphan_mask", "missing_split",
                                  "bad_split_name", "bad_split"])
def test_folder_errors(tmp_path, case):
    root = tmp_path / "d"
    if case == "missing":
        target, split = tmp_path / "nope" / "x", "train"
    elif case == "no_layout":
        root.mkdir()
        target, split = root, "train"
    else:
        target, split = make_plain(root), "train"
        if case == "orphan_mask":
            (root / "images" / "im03.png").unlink()
        elif case == "missing_split":
            (root / "train.txt").write_text("im00\n")
            split = "val"
        elif case == "bad_split_name":
            (root / "train.txt").write_text("im00\nim99\n")
            (root / "val.txt").write_text("im01\n")
        else:
            split = "test"
    with pytest.raises(DataError) as info:
        get_dataset(target, split)
    assert "Fix:" in str(info.value) or "Expected" in str(info.value)
