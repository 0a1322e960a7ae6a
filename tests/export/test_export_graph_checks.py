"""TensorRT operator list and structural checks on hand-built graphs (no torch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from segdeploy.errors import ExportError
from segdeploy.export.graph_checks import check_io_contract, check_onnx_file, raise_for_errors
from segdeploy.export.trt_onnx_ops import check_trt_support, list_for_opset, load_op_lists

DYN = ["batch", 3, "height", "width"]


def _model(nodes, *, opset: int = 18, inputs=None, outputs=None, inits=(), in_type=None,
           in_dims=DYN) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("input", in_type or TensorProto.FLOAT, in_dims)
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, DYN)
    graph = helper.make_graph(nodes, "g", inputs or [x], outputs or [y], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _conv_relu(**kw) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.ones((3, 3, 1, 1), np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["logits"], name="relu")]
    return _model(nodes, inits=[w], **kw)


def test_op_lists_record_their_source() -> None:
    data = load_op_lists()
    assert "onnx-tensorrt" in data["source"]
    for key, entry in data["lists"].items():
        assert entry["url"].startswith("https://github.com/onnx/onnx-tensorrt/"), key
        assert entry["commit"] and entry["opset_max"] >= 17
        for op in ("Conv", "ConvTranspose", "Resize", "ArgMax", "MaxPool", "Cast", "Slice"):
            assert entry["ops"][op]["supported"], (key, op)
        assert not entry["ops"]["Unique"]["supported"]
    assert list_for_opset(17)[0] == "tensorrt-8.5"
    assert list_for_opset(18)[0] == "tensorrt-10.15"


def test_clean_graph_has_no_findings() -> None:
    assert check_trt_support(_conv_relu(opset=17)) == []
    assert check_trt_support(_conv_relu(opset=18)) == []


def test_unsupported_and_custom_ops_are_errors() -> None:
    nodes = [helper.make_node("Unique", ["input"], ["u"], name="uniq"),
             helper.make_node("Relu", ["input"], ["r"], name="relu"),
             helper.make_node("FancyOp", ["r"], ["logits"], name="fancy", domain="my.ops")]
    model = _model(nodes, opset=17)
    model.opset_import.append(helper.make_opsetid("my.ops", 1))
    errors = [f for f in check_trt_support(model) if f.level == "error"]
    text = " ".join(f.message for f in errors)
    assert "Unique" in text and "my.ops::FancyOp" in text and "TensorRT 8.5" in text
    assert {"uniq", "fancy"} <= {n for f in errors for n in f.nodes}


def test_resize_modes_trt_cannot_run_are_errors() -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    for mode, ok in (("linear", True), ("cubic", False)):
        node = helper.make_node("Resize", ["input", "", "scales"], ["logits"], name="up",
                                mode=mode)
        findings = check_trt_support(_model([node], inits=[scales]))
        assert (findings == []) is ok, (mode, findings)
        if not ok:
            assert "cubic" in findings[0].message


def test_opset_above_the_target_list_is_an_error() -> None:
    findings = check_trt_support(_conv_relu(opset=18), target="tensorrt-8.5")
    assert any("opset 18" in f.message and f.level == "error" for f in findings)


def test_uint8_input_warns_for_tensorrt_8() -> None:
    cast = helper.make_node("Cast", ["input"], ["logits"], to=TensorProto.FLOAT, name="cast")
    findings = check_trt_support(_model([cast], opset=17, in_type=TensorProto.UINT8))
    assert [f.level for f in findings] == ["warning"] and "uint8" in findings[0].message
    assert check_trt_support(_model([cast], opset=18, in_type=TensorProto.UINT8)) == []


def test_io_contract_needs_dynamic_named_dims() -> None:
    assert check_io_contract(_conv_relu()) == []
    static = check_io_contract(_conv_relu(in_dims=[1, 3, 64, 64]))
    assert static and static[0].check == "dynamic-axes" and "batch" in static[0].message
    wrong = check_io_contract(_conv_relu(), output_names=("logits", "mask"))
    assert wrong and wrong[0].check == "io"


def test_check_file_reports_corrupt_files(tmp_path: Path) -> None:
    good = tmp_path / "good.onnx"
    onnx.save(_conv_relu(), str(good))
    assert check_onnx_file(good) == []
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(good.read_bytes()[:40])
    findings = check_onnx_file(bad)
    assert findings and findings[0].level == "error"
    with pytest.raises(ExportError, match="failed its checks"):
        raise_for_errors(findings, "bad.onnx")
