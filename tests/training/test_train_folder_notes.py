"""`segdeploy train` on a user's folder without split files says once how it split it (counts
and rule), and explains in one line an --image-size larger than every image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from segdeploy.cli.main import main
from segdeploy.data.folder_layout import discover, split_note
from segdeploy.training.setup import crop_note

SMALL = ["--width", "0.125", "--batch-size", "2", "--device", "cpu", "--no-progress",
         "--epochs", "1", "--limit-train", "2", "--limit-val", "1"]
SIZES = [(40, 52), (36, 44), (48, 40)]  # JPEGs in three sizes, as a phone folder would be


def _plain_folder(root: Path, n: int = 10) -> Path:
    """images/*.jpg in three sizes + masks/*.png (ids 0, 1), no train.txt / val.txt."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        h, w = SIZES[i % 3]
        m = np.zeros((h, w), np.uint8)
        m[4:h // 2, 3:w // 2 + i % 4] = 1
        img = (rng.integers(0, 60, (h, w, 3)) + 120 * m[:, :, None]).astype(np.uint8)
        Image.fromarray(img).save(root / "images" / f"img{i:02d}.jpg", quality=95)
        Image.fromarray(m, "L").save(root / "masks" / f"img{i:02d}.png")
    return root


def _train(root: Path, tmp_path: Path, capsys, *extra: str) -> str:
    main(["train", "unet", "--data", str(root), *SMALL, *extra, "-o", str(tmp_path / "m.pt")])
    return capsys.readouterr().out


def test_train_says_once_how_it_split_and_that_the_crop_is_too_big(tmp_path: Path,
                                                                   capsys) -> None:
    root = _plain_folder(tmp_path / "photos")
    out = _train(root, tmp_path, capsys, "--image-size", "160")
    split_lines = [ln for ln in out.splitlines() if "train.txt" in ln]
    assert len(split_lines) == 1, out
    line = split_lines[0]
    assert f"no train.txt / val.txt in {root}" in line
    assert "the 10 labelled images: 8 train / 2 val" in line
    assert "every 5th name in sorted order is val" in line
    crop = [ln for ln in out.splitlines() if "--image-size 160x160" in ln]
    assert len(crop) == 1, out
    assert "larger than every training image (the largest is 40x52, HxW)" in crop[0]
    assert "pass --image-size 40x52, or 'full'" in crop[0]


def test_no_notes_when_the_folder_has_split_files_and_the_crop_fits(tmp_path: Path,
                                                                    capsys) -> None:
    root = _plain_folder(tmp_path / "photos")
    names = sorted(p.stem for p in (root / "images").iterdir())
    (root / "train.txt").write_text("\n".join(names[:7]) + "\n")
    (root / "val.txt").write_text("\n".join(names[7:]) + "\n")
    out = _train(root, tmp_path, capsys, "--image-size", "40")
    assert "train.txt" not in out and "larger than every" not in out


def test_split_note_for_few_images_and_cvat(tmp_path: Path) -> None:
    from own_data_folders import make_cvat

    few = discover(_plain_folder(tmp_path / "few", n=3))
    assert "2 train / 1 val (fewer than 5 images: the last name" in (split_note(few) or "")
    cvat = split_note(discover(make_cvat(tmp_path / "cvat")))
    assert cvat is not None and cvat.startswith("default.txt has no train/val split")
    assert "6 train / 1 val" in cvat and str(tmp_path / "cvat" / "ImageSets") in cvat


def test_crop_note_only_when_no_image_fills_the_crop() -> None:
    sizes = [[40, 52], [48, 40]]
    assert crop_note((48, 48), sizes) is not None  # neither image is 48x48 or larger
    assert crop_note((40, 52), sizes) is None and crop_note(None, sizes) is None
    assert "pass --image-size 40x52" in (crop_note((64, 500), sizes) or "")
