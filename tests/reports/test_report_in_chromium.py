"""The report page in a real browser (headless Chromium): the verdict shows, every image
decodes and is drawn with a non-zero size, the console stays clean; and the check itself
catches a broken image and a console error (a check that cannot fail proves nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chromium_page import MISSING, find_chromium, render
from hand_made import hand_made_report

from segdeploy.verify.html_page import write_verify_page

pytestmark = pytest.mark.skipif(find_chromium() is None, reason=MISSING)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    report, worst = hand_made_report()
    return write_verify_page(report, worst, tmp_path_factory.mktemp("page") / "verify.html")


def test_the_page_renders_cleanly(page: Path) -> None:
    shown = render(page)
    assert shown.verdict is not None and shown.verdict.startswith(
        "FAIL: unet_brain.fp16.onnx (fp16, onnxruntime) disagrees with PyTorch")
    assert len(shown.images) == 8 and shown.broken_images() == []
    assert all(i["drawn"][0] >= 100 for i in shown.images)  # 6-pixel masks drawn large
    assert shown.errors == [] and shown.scripts == 0
    assert shown.screenshot.startswith(b"\x89PNG")


def test_the_check_catches_a_broken_image_and_a_console_error(page: Path,
                                                              tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    uris = re.findall(r'src="(data:image/png;base64,[^"]+)"', text)
    broken = text.replace(uris[2], "data:image/png;base64,AAAA" + uris[2][-40:], 1)
    broken = broken.replace("</body>", "<script>console.error('deliberate')</script></body>")
    (bad := tmp_path / "broken.html").write_text(broken, encoding="utf-8")
    shown = render(bad)
    assert shown.broken_images() == ["engine mask"]
    assert any("deliberate" in e for e in shown.errors), shown.errors
