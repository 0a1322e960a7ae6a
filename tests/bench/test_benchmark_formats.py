"""`segdeploy benchmark`: every format a row (accuracy beside speed), failures rows with
their reason, files reused when up to date. End to end on the small brain U-Net."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from cli_run import cli_fails, run_cli

from segdeploy.bench import format_results as fr
from segdeploy.bench.formats import FORMAT_KEYS, FORMATS, Format, select_formats, why_unavailable
from segdeploy.cli.benchmark_artifacts import MakeOptions, needed_for
from segdeploy.cli.benchmark_run import BenchmarkOptions, run_benchmark
from segdeploy.errors import ArtifactError, ParityError, UsageError
from segdeploy.runtime.backends import BackendSpec, register_backend, unregister_backend

HAVE_OPENVINO = importlib.util.find_spec("openvino") is not None
DOUBLE = "failing_runner_double"


def failing_runner_double(path: Path, **options: Any) -> Any:
    """A test double of a backend that cannot open any file."""
    raise ArtifactError(f"the failing runner double refuses {path.name}")


@pytest.fixture(scope="module")
def double_backend():
    register_backend(BackendSpec(DOUBLE, failing_runner_double, (".onnx",),
                                 accepted_options=frozenset({"threads"}), label="Double"))
    yield Format("failing-double", DOUBLE, "fp32", "fp32")
    unregister_backend(DOUBLE)


def options(folder: Path, **kw: Any) -> BenchmarkOptions:
    base: dict[str, Any] = dict(data="brain", out=str(folder), images=3, warmup=0, iterations=2,
                                duration=None, threads=1,
                                make=MakeOptions(data="brain", opset=17, calibration_images=4,
                                                 threads=1))
    return BenchmarkOptions(**{**base, **kw})


@pytest.fixture(scope="module")
def benchmark_run(brain_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory,
                  double_backend: Format) -> tuple[fr.BenchmarkResult, Path]:
    """One full run: every real format plus the failing double."""
    folder = tmp_path_factory.mktemp("benchmark")
    result = run_benchmark(brain_checkpoint, options(folder, table=(*FORMATS, double_backend)))
    return result, folder


def test_every_format_is_a_row_in_table_order(benchmark_run) -> None:
    result, _ = benchmark_run
    assert [r.format for r in result.rows] == ["pytorch", *FORMAT_KEYS, "failing-double"]
    ref = result.row("pytorch")
    assert ref.status == fr.REFERENCE and ref.agreement == 100.0 and 50 < ref.miou <= 100
    allowed = {fr.OK, fr.GATE_FAILED, fr.NOT_AVAILABLE, fr.EXPORT_FAILED, fr.RUN_FAILED}
    for row in result.rows[1:]:
        assert row.status in allowed, row
        assert (row.reason == "") == (row.status == fr.OK), row  # every failure says why


def test_measured_rows_have_accuracy_and_speed(benchmark_run) -> None:
    result, _ = benchmark_run
    measured = [r for r in result.rows if r.measured]
    assert {"pytorch", "onnxruntime-fp32", "onnxruntime-fp16"} <= {r.format for r in measured}
    for row in measured:
        assert 0.0 <= row.agreement <= 100.0 and 0.0 <= row.miou <= 100.0, row
        assert row.miou_drop == pytest.approx(result.row("pytorch").miou - row.miou)
        assert row.p50_ms > 0 and row.images_per_s > 0 and len(row.samples_ms) == 2
        assert row.size_mb > 0 and Path(row.file).is_file()
    fp32 = result.row("onnxruntime-fp32")
    assert fp32.status == fr.OK and fp32.agreement >= 99.9  # the FP32 gate
    assert fp32.gate == {"min_agreement": 99.9, "max_miou_drop": None}
    int8 = result.row("onnxruntime-int8")
    assert int8.precision == "int8" and int8.gate["max_miou_drop"] == 1.0
    assert int8.size_mb < fp32.size_mb  # int8 weights


def test_a_format_that_cannot_run_is_a_row_with_its_reason(benchmark_run) -> None:
    result, _ = benchmark_run
    double = result.row("failing-double")
    assert double.status == fr.RUN_FAILED
    assert "failing runner double refuses" in double.reason
    assert double.p50_ms is None and double.agreement is None
    for key in ("tensorrt-fp16", "tensorrt-int8"):
        row = result.row(key)
        why = why_unavailable(next(f for f in FORMATS if f.key == key))
        if why is not None:  # never faked: the machine's reason
            assert row.status == fr.NOT_AVAILABLE and row.reason == why
            assert row.p50_ms is None and row.file == ""


@pytest.mark.skipif(not HAVE_OPENVINO, reason="OpenVINO is not installed")
def test_openvino_rows_say_what_they_computed_in(benchmark_run) -> None:
    result, _ = benchmark_run
    assert result.row("openvino-fp32").info["inference_precision"] == "fp32"
    bf16 = result.row("openvino-bf16")
    if bf16.status != fr.NOT_AVAILABLE:
        assert bf16.info["inference_precision"] == "bf16"
        assert bf16.gate["min_agreement"] == 99.5  # bf16 is judged as fp16


def test_json_holds_every_row_and_markdown_every_format(benchmark_run, tmp_path: Path) -> None:
    result, _ = benchmark_run
    path = fr.write_json(result, tmp_path / "b.json")
    data = json.loads(path.read_text())
    assert [r["format"] for r in data["rows"]] == [r.format for r in result.rows]
    assert data["rows"][1]["status"] == result.rows[1].status and data["images"] == 3
    assert data["environment"]["cpu"] and not list(tmp_path.glob("*.tmp*"))
    md = fr.markdown_table(result).splitlines()
    assert len(md) == 2 + len(result.rows)
    assert any(line.startswith("| failing-double |") and "run failed: " in line for line in md)


def test_up_to_date_files_are_reused(benchmark_run, brain_checkpoint: Path) -> None:
    result, folder = benchmark_run
    onnx = folder / f"{brain_checkpoint.stem}.onnx"
    before = onnx.stat().st_mtime_ns
    again = run_benchmark(brain_checkpoint, options(
        folder, formats=["onnxruntime-fp32", "onnxruntime-int8"]))
    assert [r.format for r in again.rows] == ["pytorch", "onnxruntime-fp32", "onnxruntime-int8"]
    assert all(r.info["reused"] for r in again.rows[1:])
    assert onnx.stat().st_mtime_ns == before
    assert again.row("onnxruntime-fp32").agreement == result.row("onnxruntime-fp32").agreement


def test_a_failed_export_is_a_row_and_the_rest_continues(benchmark_run, brain_checkpoint,
                                                         monkeypatch, tmp_path) -> None:
    _, folder = benchmark_run

    def quantize_that_fails_double(source, opts, log=None):
        raise ParityError("INT8 fails the gate even with every quantized layer in float")

    monkeypatch.setattr("segdeploy.export.quantize.quantize_model", quantize_that_fails_double)
    result = run_benchmark(brain_checkpoint, options(
        folder, formats=["onnxruntime-fp32", "onnxruntime-int8"],
        make=MakeOptions(data="brain", opset=17, reuse=False, threads=1)))
    int8 = result.row("onnxruntime-int8")
    assert int8.status == fr.EXPORT_FAILED and "INT8 fails the gate" in int8.reason
    assert result.row("onnxruntime-fp32").status == fr.OK


def test_cli_table_and_json(benchmark_run, brain_checkpoint, tmp_path, capsys) -> None:
    _, folder = benchmark_run
    code, out, err = run_cli(["benchmark", str(brain_checkpoint), "--data", "brain",
                              "-f", "onnxruntime-fp32,tensorrt-fp16", "--out", str(folder),
                              "--images", "2", "--iterations", "2", "--opset", "17",
                              "--threads", "1", "--json", str(tmp_path / "b.json")], capsys)
    assert code == 0, err
    assert "onnxruntime-fp32" in out and "tensorrt-fp16" in out and "agree %" in out
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert [r["format"] for r in rows] == ["pytorch", "onnxruntime-fp32", "tensorrt-fp16"]


def test_cli_refuses_an_unknown_format_before_any_work(brain_checkpoint, capsys) -> None:
    err = cli_fails(capsys, ["benchmark", str(brain_checkpoint), "--data", "brain",
                             "-f", "onnxruntime-fp64"])
    assert "unknown format 'onnxruntime-fp64'" in err and "onnxruntime-fp32" in err


def test_format_selection_and_artifact_order() -> None:
    assert [f.key for f in select_formats(["openvino-bf16,onnxruntime-fp32"])] == [
        "onnxruntime-fp32", "openvino-bf16"]
    assert [f.key for f in select_formats(None)] == list(FORMAT_KEYS)
    with pytest.raises(UsageError, match="unknown format"):
        select_formats(["tflite"])
    assert needed_for(["plan-int8"]) == ["fp32", "int8-trt", "plan-int8"]
    assert needed_for(["int8", "fp16"]) == ["fp32", "fp16", "int8"]


@pytest.mark.skipif(not HAVE_OPENVINO, reason="OpenVINO is not installed")
def test_bf16_needs_a_cpu_that_computes_it() -> None:
    bf16 = next(f for f in FORMATS if f.key == "openvino-bf16")
    assert "bf16" in (why_unavailable(bf16, extensions=["AVX2", "AVX-512F"]) or "")
    assert why_unavailable(bf16, extensions=["AMX-BF16"]) is None


def test_tensorrt_plans_come_from_the_right_onnx(benchmark_run, brain_checkpoint, monkeypatch
                                                 ) -> None:
    """Where TensorRT is present, FP16 builds from NAME.fp16.onnx and INT8 from a symmetric
    QDQ copy (TensorRT needs zero points of 0); checked with doubles of quantize and build,
    as this machine has no TensorRT."""
    import shutil

    from segdeploy.cli.benchmark_artifacts import ArtifactMaker
    from segdeploy.precision import Precision

    _, folder = benchmark_run
    quantized, built = [], []

    def quantize_double(source, opts, log=None):
        quantized.append((Path(source).name, opts.symmetric))
        shutil.copyfile(source, opts.output)

    def build_engine_double(request):
        built.append((request.onnx_path.name, request.precision, request.output.name))
        request.output.write_bytes(b"a plan double")

    monkeypatch.setattr("segdeploy.export.quantize.quantize_model", quantize_double)
    monkeypatch.setattr("segdeploy.engine.engine_build.build_engine", build_engine_double)
    maker = ArtifactMaker(brain_checkpoint, folder, MakeOptions(data="brain", opset=17))
    arts = maker.make(["plan-fp16", "plan-int8"])
    stem = brain_checkpoint.stem
    assert arts.failed == {}
    assert {"fp32", "fp16"} <= arts.reused  # made by the full run above, still up to date
    assert quantized == [(f"{stem}.onnx", True)]
    assert built == [(f"{stem}.fp16.onnx", Precision.FP16, f"{stem}.fp16.plan"),
                     (f"{stem}.int8-trt.onnx", Precision.INT8, f"{stem}.int8.plan")]


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                    reason="matplotlib (the plot extra) is not installed")
def test_plot_has_one_box_per_measured_format(benchmark_run, tmp_path: Path,
                                              monkeypatch) -> None:
    import matplotlib.pyplot as plt

    from segdeploy.bench import plot
    from segdeploy.bench.format_results import write_plot

    result, _ = benchmark_run
    drawn: list[list[str]] = []
    draw = plot.draw_plot

    def draw_and_keep_labels(report):
        fig = draw(report)
        drawn.append([t.get_text() for t in fig.axes[0].get_yticklabels()])
        return fig

    plot_path = tmp_path / "b.png"
    monkeypatch.setattr(plot, "draw_plot", draw_and_keep_labels)
    write_plot(result, plot_path)
    plt.close("all")
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    measured = [f"{r.format} ({r.status})" for r in result.rows if r.samples_ms]
    assert drawn == [measured] and "failing-double (run failed)" not in measured


def test_reuse_needs_this_checkpoint_and_these_options(benchmark_run, brain_checkpoint,
                                                       tmp_path: Path) -> None:
    from segdeploy.cli.benchmark_artifacts import ArtifactMaker

    _, folder = benchmark_run

    def fresh(ckpt: Path = brain_checkpoint, **kw: Any) -> bool:
        opts = MakeOptions(**{"data": "brain", "opset": 17, **kw})
        return ArtifactMaker(ckpt, folder, opts).up_to_date("fp32")

    assert fresh()
    assert not fresh(opset=18)
    assert not fresh(with_argmax=True)
    other = tmp_path / brain_checkpoint.name  # same name, other bytes: other weights
    other.write_bytes(brain_checkpoint.read_bytes() + b"\0")
    assert not fresh(other)
