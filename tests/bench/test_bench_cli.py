"""`segdeploy bench` on the session's brain U-Net (PyTorch, ONNX Runtime, Segmenter) with
tiny iteration counts: the report's structure and consistency, never its timings."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from segdeploy.cli.main import main


def _bench(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    try:
        main(["bench", *args, "--warmup", "1", "--no-progress"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_bench_all_cpu_backends_side_by_side(brain_checkpoint, brain_onnx, tmp_path: Path,
                                             capsys) -> None:
    fp32, fp16 = brain_onnx
    out_json, out_png = tmp_path / "bench.json", tmp_path / "bench.png"
    code, out = _bench(capsys, "--engine", str(fp32), "--engine", str(fp16), "--checkpoint",
                       str(brain_checkpoint), "-s", "1x1x64x80", "-s", "2x1x97x131",
                       "-n", "3", "--threads", "1", "--json", str(out_json),
                       "--plot", str(out_png))
    assert code == 0, out
    report = json.loads(out_json.read_text())
    names = {r["backend"] for r in report["results"]}
    ov = {r["backend"] for r in report["results"] if r["backend"].startswith("openvino")}
    assert names - ov == {"pytorch eager", "onnxruntime fp32", "onnxruntime fp16",
                          "segmenter onnxruntime fp32", "segmenter onnxruntime fp16"}
    if importlib.util.find_spec("openvino") is not None:  # one per graph and precision hint
        from segdeploy.bench.openvino import default_precisions

        assert len(ov) == 2 * len(default_precisions()) and "openvino fp32" in ov
    assert len(report["results"]) == 2 * len(names)
    assert report["settings"]["interleaved"] is True
    for shape in ([1, 1, 64, 80], [2, 1, 97, 131]):
        rows = [r for r in report["results"] if r["shape"] == shape]
        assert len(rows) == len(names)
        # relative to the named baseline, not to the slowest row (issue 22)
        base = next(r for r in rows if r["backend"] == "onnxruntime fp32")
        assert base["speedup"] == pytest.approx(1.0)
        for r in rows:
            assert r["speedup"] == pytest.approx(base["mean_ms"] / r["mean_ms"])
    assert report["settings"]["speedup_baseline"] == "onnxruntime fp32"
    for r in report["results"]:
        assert r["iterations"] == 3 and len(r["samples_ms"]) == 3
        assert r["min_ms"] <= r["median_ms"] <= r["max_ms"]
        assert r["p90_ms"] <= r["p95_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert r["throughput"] == pytest.approx(r["batch"] / (r["mean_ms"] / 1e3))
        assert r["batch"] == r["shape"][0]
        assert any("only 3 iterations" in w for w in r["warnings"])
    env = report["environment"]
    assert env["cores"]["logical"] >= 1 and env["cpu"]
    for lib in ("numpy", "onnxruntime", "torch", "segdeploy"):
        assert lib in env["versions"]
    assert report["settings"]["threads"] == 1
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "speed-up" in out and "warning" in out and "cpu:" in out


def test_bench_default_shape_comes_from_the_model_card(brain_checkpoint, brain_onnx,
                                                       tmp_path: Path, capsys) -> None:
    from segdeploy.reference_models.checkpoint import load_checkpoint

    card = load_checkpoint(brain_checkpoint).card
    out_json = tmp_path / "b.json"
    code, out = _bench(capsys, "--engine", str(brain_onnx[0]), "-b", "onnxruntime", "-n", "2",
                       "--json", str(out_json))
    assert code == 0, out
    results = json.loads(out_json.read_text())["results"]
    assert [r["backend"] for r in results] == ["onnxruntime fp32"]
    # brain slices are all 197x233: that, not the training crop, is the typical input
    assert card.typical_size() == [197, 233] != card.train_size
    assert results[0]["shape"] == [1, card.in_channels, 197, 233]


def test_bench_duration_mode(brain_onnx, tmp_path: Path, capsys) -> None:
    out_json = tmp_path / "d.json"
    code, out = _bench(capsys, "--engine", str(brain_onnx[0]), "-b", "segmenter", "-s",
                       "48x48", "--duration", "0.05", "--json", str(out_json))
    assert code == 0, out
    (r,) = json.loads(out_json.read_text())["results"]
    assert r["iterations"] >= 1 and r["total_s"] >= 0.05
    assert any("s measured" in w for w in r["warnings"])


def test_bench_tensorrt_without_a_plan_is_reported_as_skipped(brain_onnx, capsys) -> None:
    code, out = _bench(capsys, "--engine", str(brain_onnx[0]), "-b", "tensorrt", "-b",
                       "onnxruntime", "-s", "48x48", "-n", "1")
    assert code == 0, out
    assert "skipped" in out and "segdeploy build" in out


@pytest.mark.parametrize("args, message", [
    (["-b", "pytorch"], "--checkpoint"),
    (["-s", "1x2x3"], "NxCxHxW"),
    (["-n", "3", "--duration", "1"], "both --iterations and --duration"),
    (["--plot", "out.gif"], ".png"),
])
def test_bench_usage_errors(brain_onnx, capsys, tmp_path: Path, args: list[str],
                            message: str) -> None:
    args = [a if a != "out.gif" else str(tmp_path / a) for a in args]
    code, out = _bench(capsys, "--engine", str(brain_onnx[0]), *args)
    assert code != 0 and message in out


def test_bench_needs_something_to_run(capsys) -> None:
    code, out = _bench(capsys)
    assert code == 1 and "nothing to benchmark" in out


def test_bench_plan_without_tensorrt_names_the_extra(brain_onnx, tmp_path: Path,
                                                     capsys) -> None:
    """Where TensorRT is absent, a plan's backends are skipped and the error names the extra
    (a placeholder plan file: it is never deserialised here)."""
    pytest.importorskip("onnx")
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    from segdeploy.manifest import ExportInfo, PlanManifest
    from segdeploy.runtime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(brain_onnx[1]) as runner:
        info = ExportInfo.from_metadata_props(runner.metadata())
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"placeholder, not a TensorRT engine")
    manifest = PlanManifest(export=info, tensorrt_version="10.3.0", precision="fp16",
                            profiles=[], io=[], onnx_sha256="")
    (tmp_path / "m.plan.json").write_text(json.dumps(manifest.to_dict()))
    code, out = _bench(capsys, "--engine", str(plan), "-s", "48x48", "-n", "1")
    assert code == 1 and "no backend could run" in out and "segdeploy[tensorrt]" in out
