"""`segdeploy verify --report verify.html` on the session's brain U-Net against an engine
whose last convolution was nudged: the page says FAIL, shows the worst images with both
masks and a disagreement map, and renders cleanly in headless Chromium, which writes a
screenshot for a person to look at (build/reports/verify-report.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from chromium_page import MISSING, find_chromium, render  # noqa: E402
from cli_run import run_cli  # noqa: E402
from onnx_edits import noisy_last_conv  # noqa: E402

from segdeploy.cli.main import main  # noqa: E402

#: where the browser test leaves its screenshot (ignored by git)
SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "reports" / "verify-report.png"
IMAGES = 3
SIZES = "97x131,129x161"


def _exit_code(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def failing_page(brain_checkpoint, brain_onnx, tmp_path_factory) -> Path:
    """The page of a verify that fails (written before the command exits 1)."""
    folder = tmp_path_factory.mktemp("verify_report")
    engine = noisy_last_conv(brain_onnx[0], folder / "nudged.onnx", 0.5)
    page = folder / "verify.html"
    code = _exit_code(["verify", str(brain_checkpoint), "--engine", str(engine), "--sizes",
                       SIZES, "--max-images", "4", "--report-images", str(IMAGES),
                       "--no-progress", "--report", str(page)])
    assert code == 1 and page.is_file()
    return page


def test_the_page_of_a_failing_verify(failing_page: Path) -> None:
    from page_parts import PageParts, decode_png

    text = failing_page.read_text(encoding="utf-8")
    parts = PageParts(text)
    assert 'class="verdict fail">FAIL: nudged.onnx (fp32, onnxruntime) disagrees' in text
    assert [row[0] for row in parts.tables["Per size"][1:]] == ["97x131", "129x161"]
    iou = parts.tables["Per-class IoU between the PyTorch and engine masks"]
    assert iou[0][1:] == ["background", "grey matter", "white matter"]
    assert all(0 <= float(v) <= 1 for row in iou[1:] for v in row[1:] if v != "-")
    alts = [i["alt"] for i in parts.images]
    assert alts == ["image", "PyTorch mask", "engine mask", "disagreement"] * IMAGES
    ref, eng, diff = (decode_png(parts.images[k]["src"]) for k in (1, 2, 3))
    differ = (ref != eng).any(axis=2)
    assert differ.any()  # the worst image does disagree, and the map marks exactly there
    assert (diff[differ] != diff[differ][:, :1]).any(axis=1).all()      # coloured
    assert (diff[~differ] == diff[~differ][:, :1]).all()                 # grey
    assert "\u2192 engine" in text and " px" in text


def test_report_needs_an_html_path(brain_checkpoint, brain_onnx, tmp_path, capsys) -> None:
    code, out, err = run_cli(["verify", str(brain_checkpoint), "--engine", str(brain_onnx[0]),
                              "--report", str(tmp_path / "v.json")], capsys)
    assert code == 1 and "an .html file" in err and "v.html" in err
    assert list(tmp_path.iterdir()) == []


def test_a_passing_verify_writes_a_passing_page(brain_checkpoint, brain_onnx, tmp_path,
                                                capsys) -> None:
    page = tmp_path / "ok.html"
    code, out, err = run_cli(["verify", str(brain_checkpoint), "--engine", str(brain_onnx[0]),
                              "--sizes", "97x131", "--max-images", "2", "--no-progress",
                              "--report", str(page)], capsys)
    assert code == 0, out + err
    assert f"HTML report written to {page}" in out
    text = page.read_text(encoding="utf-8")
    assert 'class="verdict pass">PASS: unet_brain.onnx (fp32, onnxruntime) agrees' in text


@pytest.mark.skipif(find_chromium() is None, reason=MISSING)
def test_the_page_in_chromium(failing_page: Path) -> None:
    shown = render(failing_page)
    assert shown.verdict is not None and shown.verdict.startswith("FAIL: nudged.onnx")
    assert len(shown.images) == 4 * IMAGES and shown.broken_images() == []
    assert shown.errors == []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(shown.screenshot)
    from PIL import Image

    with Image.open(SCREENSHOT) as shot:
        assert shot.width == 1280 and shot.height > 900  # the whole page, not one screen


def test_worst_images_of_a_valid_unet_are_cropped_to_its_output(tmp_path) -> None:
    """A "valid" model's masks are smaller than its input: the image kept beside them is the
    input's part under the masks (the model's margin cut off), pixel for pixel."""
    torch = pytest.importorskip("torch")
    from segdeploy.data import dataset_for_model
    from segdeploy.export import ExportOptions, run_export
    from segdeploy.reference_models import get_model
    from segdeploy.reference_models.checkpoint import card_from_model, save_checkpoint
    from segdeploy.verify.compare import label_offset, resize_pair, run_verify
    from segdeploy.verify.worst import WorstImages

    torch.manual_seed(0)
    net = get_model("unet_valid", num_classes=3, width=0.0625, in_channels=1).eval()
    card = card_from_model(net, classes=["background", "grey matter", "white matter"],
                           mean=[0.2], std=[0.3], channel_mode="grey", train_size=[197, 233])
    checkpoint = save_checkpoint(tmp_path / "valid.pt", net, card)
    exported = run_export(checkpoint, ExportOptions(output=str(tmp_path / "valid.onnx"),
                                                    opset=17, fp16=False, trt_check=False,
                                                    check_sizes=["1x1x197x233"]))
    worst = WorstImages(2)
    report = run_verify(checkpoint, exported.onnx_path, data="brain", sizes=[(197, 233)],
                        max_images=2, progress=False, worst=worst)
    out_h, out_w = report["sizes"][0]["output_size"]
    assert (out_h, out_w) < (197, 233)
    dataset = dataset_for_model(card, "brain", "val")
    oy, ox = label_offset(card, (197, 233), (out_h, out_w))
    assert oy > 0
    for item in worst.items():
        assert item.reference.shape == item.engine.shape == (out_h, out_w)
        image, mask = resize_pair(*dataset[item.index], (197, 233))
        assert np.array_equal(item.image, image[oy:oy + out_h, ox:ox + out_w])
