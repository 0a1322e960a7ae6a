"""INT8 QDQ flavours (U8S8, S8S8, U8U8) read from the bytes; OpenVINO refuses the two it
mis-runs; backend="auto" runs U8S8 on OpenVINO when its first run agrees with ONNX Runtime.

The QDQ files are real: ONNX Runtime's quantize_static of a tiny model in each flavour."""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_run import run_cli
from PIL import Image
from tiny_models import QDQ_FLAVOURS, quantize_qdq

from segdeploy.errors import ArtifactError
from segdeploy.runtime.qdq_types import qdq_types

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime.quantization")


@pytest.fixture(scope="module")
def qdq_files(tiny_model, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The float file ("fp32") and its three QDQ flavours."""
    src, _ = tiny_model()
    folder = tmp_path_factory.mktemp("qdq")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = {f: quantize_qdq(src, folder / f"tiny.{f}.onnx", f) for f in QDQ_FLAVOURS}
    return {"fp32": src, **files}


@pytest.mark.parametrize("flavour", list(QDQ_FLAVOURS))
def test_the_flavour_is_read_from_the_bytes(qdq_files, flavour) -> None:
    types = qdq_types(qdq_files[flavour])
    assert types is not None and types.label == flavour
    assert types.openvino_runs_right is (flavour == "U8S8")
    assert qdq_types(qdq_files["fp32"]) is None


def test_the_wire_reader_sees_the_graph_onnx_sees(qdq_files) -> None:
    from segdeploy.onnx_wire import scan_graph

    path = qdq_files["U8S8"]
    with path.open("rb") as fh:
        graph = scan_graph(fh, path.stat().st_size)
    model = onnx.load(str(path))
    assert [n.op_type for n in graph.nodes] == [n.op_type for n in model.graph.node]
    assert [n.inputs for n in graph.nodes] == [tuple(n.input) for n in model.graph.node]
    assert graph.initializer_types == {t.name: t.data_type for t in model.graph.initializer}


def test_a_zero_point_from_a_constant_node_counts(qdq_files, tmp_path: Path) -> None:
    """Third-party files may hold zero points in Constant nodes instead of initializers."""
    model = onnx.load(str(qdq_files["S8S8"]))
    graph = model.graph
    by_name = {t.name: t for t in graph.initializer}
    moved = [n.input[2] for n in graph.node
             if n.op_type == "QuantizeLinear" and n.input[0] not in by_name]
    for name in set(moved):
        tensor = by_name[name]
        graph.initializer.remove(tensor)
        graph.node.insert(0, onnx.helper.make_node("Constant", [], [name], value=tensor))
    onnx.save(model, str(tmp_path / "constants.onnx"))
    types = qdq_types(tmp_path / "constants.onnx")
    assert moved and types is not None and types.label == "S8S8"


@pytest.mark.parametrize("flavour", ["S8S8", "U8U8"])
def test_openvino_refuses_s8s8_and_u8u8_in_one_line(qdq_files, flavour, tmp_path: Path,
                                                   capsys) -> None:
    from segdeploy.runtime import Segmenter

    with pytest.raises(ArtifactError, match=rf"OpenVINO .*{flavour} .*Expected a U8S8 .*"
                                            r"--backend onnxruntime.*without --symmetric"):
        Segmenter.load(qdq_files[flavour], backend="openvino")
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "im.png")
    code, _, err = run_cli(["predict", "--engine", str(qdq_files[flavour]), "--backend",
                            "openvino", str(tmp_path / "im.png"), "-o",
                            str(tmp_path / "m.png")], capsys)
    assert code == 1 and flavour in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.png").exists()


def test_auto_keeps_the_default_for_float_and_other_flavours(qdq_files) -> None:
    from segdeploy.runtime import Segmenter

    for name in ("fp32", "S8S8", "U8U8"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no notice: these run where they always ran
            with Segmenter.load(qdq_files[name], backend="auto") as seg:
                assert seg.runner.name == "onnxruntime" and seg.int8_agreement is None


def test_auto_runs_u8s8_on_openvino_when_it_agrees(qdq_files) -> None:
    pytest.importorskip("openvino")
    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.auto_backend import BackendNotice
    from segdeploy.runtime.int8_crosscheck import MIN_AGREEMENT

    image = np.random.default_rng(0).integers(0, 256, (45, 67, 3), dtype=np.uint8)
    notes: list[str] = []
    with Segmenter.load(qdq_files["U8S8"], backend="auto", notify=notes.append) as seg, \
            Segmenter.load(qdq_files["U8S8"]) as ort_seg:
        if seg.runner.name == "openvino":  # it agreed on this CPU: checked, no notice
            assert seg.int8_agreement is not None and seg.int8_agreement >= MIN_AGREEMENT
            assert not notes
            assert np.mean(seg.predict(image) == ort_seg.predict(image)) >= MIN_AGREEMENT
        else:  # this CPU's OpenVINO mis-ran it: ONNX Runtime, and a note says why
            assert seg.runner.name == "onnxruntime" and len(notes) == 1
    with Segmenter.load(qdq_files["U8S8"], backend="auto", providers="cpu") as seg:
        assert seg.runner.name in ("openvino", "onnxruntime")
    with pytest.warns(BackendNotice) if notes else warnings.catch_warnings():
        Segmenter.load(qdq_files["U8S8"], backend="auto").close()


def test_auto_without_openvino_installed_runs_onnxruntime(qdq_files, monkeypatch) -> None:
    from segdeploy.runtime import Segmenter

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with Segmenter.load(qdq_files["U8S8"], backend="auto") as seg:
            assert seg.runner.name == "onnxruntime"


def _disagreeing_openvino_double(path: Path, **options: Any) -> Any:
    """A test double of the OpenVINO row: the real OpenVINO runner with its logits negated,
    so that its masks disagree with ONNX Runtime's as a mis-run would."""
    from segdeploy.runtime.openvino_runner import OpenVINORunner

    class OpenVINORunnerNegatedDouble(OpenVINORunner):
        def _infer(self, feeds: Any, output_names: list[str]) -> dict[str, np.ndarray]:
            return {k: -v for k, v in super()._infer(feeds, output_names).items()}

    return OpenVINORunnerNegatedDouble(path, precision=options.pop("precision", None)
                                       or "auto", **options)


def test_auto_falls_back_to_onnxruntime_with_one_notice(qdq_files, monkeypatch, capsys,
                                                        tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.backends import BACKENDS

    monkeypatch.setitem(BACKENDS, "openvino", dataclasses.replace(
        BACKENDS["openvino"], factory=_disagreeing_openvino_double))
    notes: list[str] = []
    with Segmenter.load(qdq_files["U8S8"], backend="auto", notify=notes.append) as seg:
        assert seg.runner.name == "onnxruntime" and seg.int8_agreement is None
    assert len(notes) == 1 and "runs on ONNX Runtime because OpenVINO" in notes[0]
    assert "agree with ONNX Runtime on 0." in notes[0]  # negated logits: no pixel agrees
    image = np.random.default_rng(0).integers(0, 256, (30, 41, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "im.png")
    code, _, err = run_cli(["predict", "--engine", str(qdq_files["U8S8"]),
                            str(tmp_path / "im.png"), "-o", str(tmp_path / "m.png")], capsys)
    assert code == 0 and err.count("note:") == 1 and "OpenVINO" in err
    with Segmenter.load(qdq_files["U8S8"], backend="onnxruntime") as ref:
        assert np.array_equal(np.asarray(Image.open(tmp_path / "m.png")), ref.predict(image))
    from segdeploy.bench.backends import SegmenterBackend

    row = SegmenterBackend(qdq_files["U8S8"])  # bench's end-to-end row: the same choice
    row.open()
    try:
        assert row.seg.runner.name == "onnxruntime" and "OpenVINO" in row.info()["backend_note"]
    finally:
        row.close()


def test_auto_is_a_backend_choice(capsys) -> None:
    for command in ("predict", "verify"):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0 and "auto" in out.split("--backend", 1)[1][:200]
    code, out, _ = run_cli(["triton", "--help"], capsys)
    assert code == 0 and "auto|" not in out.replace(" ", "")


def test_bytes_that_are_no_onnx_model_are_an_artifact_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x0a\xff\xff\xff\x0f not a model")  # field 1, a length past the end
    with pytest.raises(ArtifactError, match="not a complete ONNX model"):
        qdq_types(bad)


def test_auto_with_onnxruntime_options_runs_onnxruntime(qdq_files) -> None:
    """session options name ONNX Runtime: auto does not try OpenVINO with them."""
    from segdeploy.runtime import Segmenter

    with Segmenter.load(qdq_files["U8S8"], backend="auto", spinning=True) as seg:
        assert seg.runner.name == "onnxruntime" and seg.runner.spinning is True



def test_verify_with_auto_prints_the_fallback_as_a_note(brain_checkpoint, brain_onnx,
                                                        monkeypatch, capsys,
                                                        tmp_path: Path) -> None:
    """verify --backend auto: why OpenVINO was not taken is one of the report's notes,
    not a Python warning."""
    pytest.importorskip("openvino")
    from segdeploy.runtime.backends import BACKENDS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qdq = quantize_qdq(brain_onnx[0], tmp_path / "unet.U8S8.onnx", "U8S8", in_channels=1)
    monkeypatch.setitem(BACKENDS, "openvino", dataclasses.replace(
        BACKENDS["openvino"], factory=_disagreeing_openvino_double))
    report = tmp_path / "verify.json"
    code, out, err = run_cli(["verify", str(brain_checkpoint), "--engine", str(qdq),
                              "--backend", "auto", "--sizes", "97x131", "--max-images", "2",
                              "--json", str(report)], capsys)
    assert code in (0, 1) and "Traceback" not in err  # 1: the INT8 gate's verdict
    notes = [ln for ln in out.splitlines() if ln.startswith("note")]
    assert any("runs on ONNX Runtime because OpenVINO" in n for n in notes), out
    assert "BackendNotice" not in err
    assert json.loads(report.read_text())["backend"] == "onnxruntime"


def test_openvino_auto_keeps_an_int8_files_float_layers_in_fp32(qdq_files) -> None:
    """precision="auto" is the plugin's choice for a float graph but fp32 for a QDQ graph:
    under the bf16 default the layers quantize kept in float ran in bf16 (FCN-8s lost 0.2 %
    agreement at 394x466); an explicit "bf16" is still honoured."""
    pytest.importorskip("openvino")
    from segdeploy.runtime.openvino_runner import OpenVINORunner

    with OpenVINORunner(qdq_files["U8S8"], threads=1).activate() as runner:
        assert runner.quantized and runner.inference_precision == "fp32"
    with OpenVINORunner(qdq_files["fp32"], threads=1).activate() as runner:
        assert not runner.quantized  # its own choice: bf16 where the CPU has it, else fp32
    with OpenVINORunner(qdq_files["U8S8"], threads=1, precision="bf16").activate() as runner:
        assert runner.inference_precision in ("bf16", "fp32")  # fp32: a CPU without bf16
