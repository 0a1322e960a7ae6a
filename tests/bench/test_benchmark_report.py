"""`segdeploy benchmark --report b.html`: the table, the reasons of rows that did not run and
the latency plot in one self-contained page, checked as text and rendered in headless
Chromium (a screenshot lands in build/reports/benchmark-report.png for a person)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from chromium_page import MISSING, find_chromium, render
from cli_run import cli_fails, run_cli

from segdeploy.bench import format_results as fr
from segdeploy.bench.benchmark_page import benchmark_page, write_benchmark_page
from segdeploy.reports.html import render_html

SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "reports" / "benchmark-report.png"


def _result() -> fr.BenchmarkResult:
    """A measured-looking result built by hand: the page is drawn from plain rows."""
    rows = [fr.FormatRow("pytorch", "torch", "fp32", fr.REFERENCE, agreement=100.0, miou=80.0,
                         miou_drop=0.0, p50_ms=30.0, images_per_s=33.3,
                         samples_ms=[29.0, 30.0, 31.0]),
            fr.FormatRow("onnxruntime-fp32", "onnxruntime", "fp32", fr.OK, size_mb=1.2,
                         agreement=100.0, miou=80.0, miou_drop=0.0, p50_ms=20.0,
                         images_per_s=50.0, samples_ms=[19.0, 20.0, 22.0]),
            fr.FormatRow("openvino-int8", "openvino", "int8", fr.GATE_FAILED, size_mb=0.4,
                         agreement=56.1, miou=16.3, miou_drop=63.7, p50_ms=7.0,
                         images_per_s=140.0, samples_ms=[6.9, 7.0, 7.2]),
            fr.FormatRow("tensorrt-fp16", "tensorrt", "fp16", fr.NOT_AVAILABLE,
                         reason="TensorRT is not installed")]
    return fr.BenchmarkResult("unet.pt", "brain", 3, [197, 233],
                              {"cpu": "test cpu", "cpu_extensions": ["AVX2"]},
                              {"channels": 1}, rows)


def test_page_has_every_row_the_gate_failure_and_the_reason() -> None:
    page = benchmark_page(_result(), plot=False)
    assert page.verdict is not None and page.verdict.passed is False
    assert page.verdict.text.startswith("1 of 3 formats within their gate; outside it: "
                                        "openvino-int8; fastest within its gate: "
                                        "onnxruntime-fp32")
    text = render_html(page)
    for name in ("pytorch", "onnxruntime-fp32", "openvino-int8", "tensorrt-fp16"):
        assert f">{name}<" in text
    assert "TensorRT is not installed" in text
    assert len(re.findall(r'<tr class="bad"', text)) == 1  # the gate failure only


def test_page_embeds_the_latency_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    path = write_benchmark_page(_result(), tmp_path / "b.html")
    text = path.read_text(encoding="utf-8")
    assert text.count("data:image/png;base64,") == 1
    assert "http://" not in text and "https://" not in text


def test_cli_report_end_to_end(brain_checkpoint: Path, tmp_path: Path, capsys) -> None:
    page = tmp_path / "b.html"
    code, out, err = run_cli(["benchmark", str(brain_checkpoint), "--data", "brain",
                              "-f", "onnxruntime-fp32,tensorrt-fp16",
                              "--out", str(tmp_path / "files"), "--images", "2",
                              "--iterations", "2", "--opset", "17", "--threads", "1",
                              "--report", str(page)], capsys)
    assert code == 0, err
    text = page.read_text(encoding="utf-8")
    assert "onnxruntime-fp32" in text and "tensorrt-fp16" in text
    assert f"report written to {page}" in out


def test_cli_refuses_a_report_that_is_not_html_before_any_work(brain_checkpoint: Path,
                                                                tmp_path: Path,
                                                                capsys) -> None:
    err = cli_fails(capsys, ["benchmark", str(brain_checkpoint), "--data", "brain",
                             "--out", str(tmp_path / "files"),
                             "--report", str(tmp_path / "b.png")])
    assert "an .html file" in err and not (tmp_path / "files").exists()


@pytest.mark.skipif(find_chromium() is None, reason=MISSING)
def test_the_page_in_chromium(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    shown = render(write_benchmark_page(_result(), tmp_path / "b.html"))
    assert shown.verdict is not None and shown.verdict.startswith("1 of 3 formats")
    assert len(shown.images) == 1 and shown.broken_images() == []
    assert shown.errors == []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(shown.screenshot)
