"""The HTML page builder: one self-contained file (images embedded, nothing fetched), the
verdict, tables and panels as given; and verify's page on hand-made masks."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from hand_made import AGREEMENT, CLASSES, DIFFER, IOU, hand_made_report
from page_parts import PageParts, decode_png

from segdeploy.errors import UsageError
from segdeploy.reports.html import (
    MAX_PANEL_SIDE,
    Figure,
    HtmlReport,
    Legend,
    Notes,
    Panel,
    PanelRow,
    Swatch,
    Table,
    Verdict,
    render_html,
    write_html,
)
from segdeploy.reports.masks import pair_colours
from segdeploy.verify.html_page import verify_page, write_verify_page


def _plot_png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 20), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


def _generic() -> HtmlReport:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 255
    return HtmlReport("bench <x>", Verdict(None, "measured & saved"),
                      facts=[("machine", "2 cores")],
                      sections=[Table("Latency", ["backend", "ms"], [["onnxruntime", 1.25],
                                                                     ["<openvino>", None]],
                                      status=[True, False]),
                                Legend("Classes", [Swatch((255, 0, 0), "tumour")]),
                                PanelRow("pictures", [Panel("grey", grey), Panel("red", rgb)]),
                                Figure("plot", _plot_png()), Notes("notes", ["a < b"])])


def test_page_is_self_contained_and_escaped() -> None:
    text = render_html(_generic())
    parts = PageParts(text)
    assert not re.search(r"https?://", text)                    # nothing to fetch
    assert not {"script", "link", "iframe"} & set(parts.tags)   # no code, no external sheet
    assert [i["alt"] for i in parts.images] == ["grey", "red", "plot"]
    for img in parts.images:
        assert img["src"].startswith("data:image/png;base64,")
    grey, red, plot = (decode_png(i["src"]) for i in parts.images)
    assert grey.shape == (3, 4) and grey[2, 3] == 220
    assert red.shape == (5, 7, 3) and (red[..., 0] == 255).all()
    assert plot.shape[:2] == (20, 40)
    assert parts.tables["Latency"] == [["backend", "ms"], ["onnxruntime", "1.25"],
                                      ["<openvino>", "-"]]
    assert "&lt;openvino&gt;" in text and "bench &lt;x&gt;" in text
    assert 'id="verdict" class="verdict info">measured &amp; saved<' in text
    assert '<tr class="bad">' in text and "background:#ff0000" in text


def test_verdict_colours_and_big_panels_scaled_down() -> None:
    big = np.zeros((MAX_PANEL_SIDE * 2, 300), np.uint8)
    big[:, 150:] = 255
    text = render_html(HtmlReport("t", Verdict(False, "FAIL: x"),
                                  sections=[PanelRow("big", [Panel("big", big)])]))
    assert 'class="verdict fail"' in text
    (img,) = PageParts(text).images
    pixels = decode_png(img["src"])
    assert pixels.shape == (MAX_PANEL_SIDE, 150)
    assert set(np.unique(pixels)) == {0, 255}  # nearest: masks keep their exact values
    assert (img["width"], img["height"]) == ("300", str(MAX_PANEL_SIDE * 2))


def test_bad_parts_are_refused_and_leave_no_file(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    with pytest.raises(UsageError, match="not a PNG"):
        write_html(HtmlReport("t", sections=[Figure("plot", b"GIF89a...")]), out)
    with pytest.raises(UsageError, match="uint8"):
        write_html(HtmlReport("t", sections=[PanelRow("p", [Panel("f", np.zeros((2, 2)))])]),
                   out)
    assert list(tmp_path.iterdir()) == []
    write_html(_generic(), out)
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_verify_page_tables_on_hand_made_masks() -> None:
    report, worst = hand_made_report()
    parts = PageParts(render_html(verify_page(report, worst)))
    verdict = "".join(parts.text)
    assert "FAIL: unet_brain.fp16.onnx (fp16, onnxruntime) disagrees with PyTorch" in verdict
    (header, row) = parts.tables["Per size"]
    assert header[0] == "size" and row[0] == "4x6" and row[-1] == "FAIL"
    assert row[header.index("agreement %")] == f"{AGREEMENT:.3f}"
    iou = parts.tables["Per-class IoU between the PyTorch and engine masks"]
    assert iou == [["size", *CLASSES], ["4x6", *(f"{v:.4f}" for v in IOU)]]


def test_verify_page_shows_the_worst_images_with_their_pairs() -> None:
    report, worst = hand_made_report()
    assert [w.index for w in worst] == [7, 9]
    page = verify_page(report, worst)
    text = render_html(page)
    parts = PageParts(text)
    # 2 images x (image, PyTorch mask, engine mask, disagreement), worst first
    assert [i["alt"] for i in parts.images] == ["image", "PyTorch mask", "engine mask",
                                               "disagreement"] * 2
    assert "image 7 at 4x6: 87.500% of pixels agree" in text  # 3 of 24 differ on image 7
    assert "image 9 at 4x6: 100.000% of pixels agree" in text
    assert "Both masks are identical on this image." in text
    for a, b in DIFFER.values():
        assert f"PyTorch {CLASSES[a]} \u2192 engine {CLASSES[b]}: 1 px" in text
    disagreement = decode_png(parts.images[3]["src"])
    colours = pair_colours(sorted(DIFFER.values()))  # equal counts: ordered by pair
    for (y, x), pair in DIFFER.items():
        assert tuple(disagreement[y, x]) == colours[pair]
    assert (disagreement[0, 0] == disagreement[0, 0, 0]).all()  # agreeing pixel: grey


def test_a_passing_page_says_so(tmp_path: Path) -> None:
    from segdeploy.comparison import Thresholds

    report, worst = hand_made_report(Thresholds.for_precision("fp16", min_agreement=90,
                                                              max_miou_drop=20))
    assert report["passed"]
    out = write_verify_page(report, worst, tmp_path / "v.html")
    text = out.read_text(encoding="utf-8")
    assert 'class="verdict pass">PASS: unet_brain.fp16.onnx (fp16, onnxruntime) agrees' in text
    assert "needed: agreement &gt;= 90%, mIoU drop &lt;= 20 points" in text
