"""Overlays people can read: a legend of the classes present, an outline mode, and colours
that stay visible on any image (a contrasting ring, so a red class shows on a red object)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cli_run import run_cli
from PIL import Image

from segdeploy.overlays import draw_overlay, edges, overlay_colour, with_legend


def _mask() -> np.ndarray:
    m = np.zeros((60, 80), np.uint8)
    m[10:40, 10:40] = 1
    m[30:50, 50:75] = 2
    return m


def test_a_class_coloured_like_its_object_stays_visible() -> None:
    red = np.zeros((60, 80, 3), np.uint8)
    red[...] = overlay_colour(1)  # the object has the class's own colour
    out = draw_overlay(red, _mask())
    ring = edges(_mask())
    assert (out != red).any(axis=2)[10:40, 10:40].any()  # the outline's ring differs
    assert (out[5, 5] == red[5, 5]).all()  # background left as is
    dark = np.zeros((60, 80, 3), np.uint8)
    assert draw_overlay(dark, _mask()).max() == 255 and ring.any()  # a white ring on black


def test_contours_only_touch_the_outlines() -> None:
    grey = np.full((60, 80, 3), 100, np.uint8)
    filled, outlined = draw_overlay(grey, _mask()), draw_overlay(grey, _mask(), contours=True)
    assert (filled[25, 25] != grey[25, 25]).any()  # inside a class: blended
    assert (outlined[25, 25] == grey[25, 25]).all()  # inside a class: untouched
    assert (outlined[10, 20] == overlay_colour(1)).all()  # on the outline: the class colour


def test_legend_names_the_classes_present() -> None:
    picture = np.zeros((60, 80, 3), np.uint8)
    out = with_legend(picture, _mask(), ["background", "tumour", "oedema"])
    assert out.shape[0] > 60 and out.shape[1] == 80
    strip = out[60:]
    for c in (1, 2):  # a swatch of each present class
        assert (strip == overlay_colour(c)).all(axis=2).sum() >= 50
    only_one = with_legend(picture, _mask() * (_mask() == 1), ["bg", "a", "b"])
    assert not (only_one[60:] == overlay_colour(2)).all(axis=2).any()


def test_predict_overlay_with_legend_and_contours(brain_onnx, tmp_path: Path, capsys) -> None:
    from segdeploy.data import get_dataset

    path = tmp_path / "slice.png"
    Image.fromarray(get_dataset("brain", "val")[3][0][..., 0]).save(path)
    code, _, err = run_cli(["predict", "--engine", str(brain_onnx[0]), str(path), "-o",
                            str(tmp_path / "m.png"), "--overlay", "--contours"], capsys)
    assert code == 0, err
    over = np.asarray(Image.open(tmp_path / "m.overlay.png"))
    assert over.shape[0] > 197 and over.shape[1] == 233  # the legend strip below
    code, _, err = run_cli(["predict", "--engine", str(brain_onnx[0]), str(path), "-o",
                            str(tmp_path / "n.png"), "--contours"], capsys)
    assert code == 1 and "add --overlay" in err
