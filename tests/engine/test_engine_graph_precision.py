"""`segdeploy build` reads the precision from the graph: a float16 graph labelled fp32 is
built as fp16, a QDQ copy still labelled fp32 as int8 (the label is noted). No TensorRT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from test_engine import tiny_segmentation_onnx

from segdeploy.engine.engine_build import BuildRequest, prepare_build, read_onnx_facts
from segdeploy.onnx_precision import effective_precision, graph_precision


def _as_fp16(src: Path, dst: Path) -> Path:
    from segdeploy.export.fp16 import convert_to_mixed_fp16

    x = np.random.default_rng(0).standard_normal((1, 3, 16, 24)).astype(np.float32)
    model, _ = convert_to_mixed_fp16(onnx.load(str(src)), [{"input": x}])
    onnx.save(model, str(dst))  # keeps the metadata, which still says fp32
    return dst


def test_float16_graph_labelled_fp32_builds_as_fp16(tmp_path: Path) -> None:
    src = tiny_segmentation_onnx(tmp_path / "m.onnx")
    fp16 = _as_fp16(src, tmp_path / "relabelled.onnx")
    assert graph_precision(src) == "fp32" and graph_precision(fp16) == "fp16"
    facts = read_onnx_facts(fp16)
    assert facts.export.precision == "fp16" and facts.labelled_precision == "fp32"
    assert prepare_build(BuildRequest(fp16)).facts.export.precision == "fp16"
    # an fp16 label on a graph with no float16 (every node kept fp32) is believed
    assert effective_precision(src, "fp16") == ("fp16", None)


def test_qdq_copy_labelled_fp32_builds_as_int8(tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    src = tiny_segmentation_onnx(tmp_path / "m.onnx")
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": rng.standard_normal((1, 3, 16, 24))
                                .astype(np.float32)} for _ in range(2)])

        def get_next(self):
            return next(self.items, None)

    qdq = tmp_path / "m.int8.onnx"
    quantize_static(str(src), str(qdq), Reader(), quant_format=QuantFormat.QDQ)
    assert effective_precision(qdq, "fp32")[0] == "int8"
    prep = prepare_build(BuildRequest(qdq))
    assert prep.facts.export.precision == "int8" and prep.facts.labelled_precision == "fp32"
    assert prep.precision == "int8" and prep.request.precision == "fp16"  # settled, not rewritten
