"""benchmarks/: the marker splice into BENCHMARKS.md, and one tiny end-to-end run_all."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import bench_markdown  # noqa: E402


def test_splice_replaces_between_markers_and_appends_otherwise() -> None:
    doc = f"# Title\n\nintro\n\n{bench_markdown.BEGIN}\nold\n{bench_markdown.END}\n\nfooter\n"
    out = bench_markdown.splice(doc, "new table")
    assert "old" not in out and "new table" in out
    assert out.startswith("# Title\n\nintro") and out.rstrip().endswith("footer")
    assert bench_markdown.splice(out, "newer").count(bench_markdown.BEGIN) == 1
    appended = bench_markdown.splice("# Only a title\n", "t")
    assert appended.startswith("# Only a title") and appended.rstrip().endswith(
        bench_markdown.END)


@pytest.mark.slow
def test_run_all_tiny(tmp_path: Path) -> None:
    import run_all

    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text(f"# Benchmarks\n\n{bench_markdown.BEGIN}\n{bench_markdown.END}\n")
    code = run_all.main(["--models", "fcn_resnet18", "--width", "0.125", "--sizes", "64x80",
                         "--seconds", "0.01", "--warmup", "0", "--verify-images", "1",
                         "--opset", "17", "--no-tensorrt", "--out", str(tmp_path / "res"),
                         "--update", str(doc)])
    assert code == 0
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    (model,) = summary["models"]
    backends = [r["backend"] for r in model["bench"]]
    assert backends == ["pytorch eager", "onnxruntime fp32", "onnxruntime fp16",
                        "segmenter onnxruntime fp32"]
    assert all(r["iterations"] >= 10 for r in model["bench"])  # min_iterations
    assert all(r["gflop"] > 0 and r["achieved_gflops"] > 0 for r in model["bench"])
    assert summary["sgemm_peak_gflops"] > 0 and model["export"]["timings"]["export_fp32"] > 0
    assert {v["precision"] for v in model["verify"]} == {"fp32", "fp16"}
    text = doc.read_text()
    assert "| fcn_resnet18 | 1x1x64x80 | onnxruntime fp32 |" in text
    assert summary["environment"]["cpu"] in text and "### Parity" in text
    assert (tmp_path / "res" / "BENCHMARKS.generated.md").read_text().strip() in text


@pytest.mark.slow
def test_own_data_benchmark_tiny(tmp_path: Path) -> None:
    import own_data

    result = own_data.main(["--models", "unet:nuclei", "--epochs", "1", "--width", "0.125",
                            "--keep", str(tmp_path), "--out", str(tmp_path / "o.json")])
    row, odd = result["models"]
    assert row["stride_padded"]["stride"] == 16 and row["stride_padded"]["images"] == 4
    assert odd["odd_crop"] and odd["stride_padded"]["image_size"] == [121, 117]
    assert row["delta"] == pytest.approx(row["stride_padded"]["mean_iou"]
                                         - row["unpadded"]["mean_iou"])
    assert json.loads((tmp_path / "o.json").read_text())["volume"] is None
