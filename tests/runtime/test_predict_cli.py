"""`segdeploy predict`: palette PNGs of the right size, overlays, folders, tiles, errors."""

from __future__ import annotations

import numpy as np
import pytest
from cli_run import run_cli
from PIL import Image

from segdeploy.runtime import Segmenter


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code, _, err = run_cli(argv, capsys)
    return code, err


def write_image(path, hw=(45, 67), seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    shape = (*hw, 3) if mode == "RGB" else hw
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode=mode).save(path)
    return path


def test_one_image_to_a_png_file_with_overlay(tmp_path, tiny_model, capsys):
    model, _ = tiny_model()
    src = write_image(tmp_path / "img.png")
    code, err = run(["predict", "--engine", str(model), str(src), "-o",
                     str(tmp_path / "mask.png"), "--overlay", "--threads", "1"], capsys)
    assert code == 0, err
    mask = Image.open(tmp_path / "mask.png")
    assert mask.mode == "P" and mask.size == (67, 45)
    values = np.asarray(mask)
    assert values.max() < 3
    with Segmenter.load(model) as seg:
        np.testing.assert_array_equal(values, seg.predict(np.asarray(Image.open(src))))
    over = Image.open(tmp_path / "mask.overlay.png")
    assert over.mode == "RGB" and over.size[0] == 67 and over.size[1] > 45  # + legend strip


def test_folder_to_folder_with_tiles(tmp_path, tiny_model, capsys):
    model, _ = tiny_model(in_channels=1)
    folder = tmp_path / "images"
    folder.mkdir()
    for i, hw in enumerate([(40, 50), (70, 33), (64, 64)]):
        write_image(folder / f"slice{i}.png", hw, seed=i, mode="L")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "masks"
    code, err = run(["predict", "-e", str(model), str(folder), "-o", str(out),
                     "--tile", "32", "--overlap", "8"], capsys)
    assert code == 0, err
    written = sorted(p.name for p in out.iterdir())
    assert written == ["slice0.png", "slice1.png", "slice2.png"]
    for name, hw in zip(written, [(40, 50), (70, 33), (64, 64)], strict=True):
        mask = Image.open(out / name)
        assert mask.mode == "P" and mask.size == (hw[1], hw[0])
        assert np.asarray(mask).max() < 3


def test_cli_errors_are_one_line(tmp_path, tiny_model, capsys):
    model, _ = tiny_model()
    src = write_image(tmp_path / "img.png")
    code, err = run(["predict", "-e", str(model), str(tmp_path / "nope.png"), "-o",
                     str(tmp_path / "m.png")], capsys)
    assert code == 1 and "does not exist" in err
    code, err = run(["predict", "-e", str(model), str(src), "-o", str(tmp_path / "m.jpg")],
                    capsys)
    assert code == 1 and ".png" in err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    code, err = run(["predict", "-e", str(model), str(bad), "-o", str(tmp_path / "m.png")],
                    capsys)
    assert code == 1 and "cannot read image" in err
    code, err = run(["predict", "-e", str(model), str(src), "-o", str(tmp_path / "m.png"),
                     "--overlap", "4"], capsys)
    assert code == 1 and "--tile" in err
    assert not (tmp_path / "m.png").exists()
