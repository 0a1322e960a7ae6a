"""Large-stride ConvTranspose as a sub-pixel convolution: the same output as the original
graph in ONNX Runtime (to float rounding), only where the pattern holds, and in OpenVINO."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from segdeploy.errors import ArtifactError  # noqa: E402
from segdeploy.runtime.qdq_types import wire_graph  # noqa: E402
from segdeploy.runtime.subpixel import rewrite_conv_transposes, rewritten_onnx  # noqa: E402


def _deconv_graph(c_in: int, c_out: int, kernel: int, stride: int, pads: list[int], *,
                  bias: bool = False, quantized_weight: int | None = None, group: int = 1,
                  output_padding: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(kernel * 31 + stride)
    w = rng.standard_normal((c_in, c_out // group, kernel, kernel)).astype(np.float32)
    inits = []
    nodes = []
    if quantized_weight is not None:  # per-channel int8 on that axis (1: quantize_static's)
        axis = quantized_weight
        others = tuple(a for a in range(4) if a != axis)
        scale = (np.abs(w).max(axis=others) / 127).astype(np.float32)
        shape = [1, 1, 1, 1]
        shape[axis] = -1
        q = np.round(w / scale.reshape(shape)).astype(np.int8)
        inits += [numpy_helper.from_array(q, "Wq"), numpy_helper.from_array(scale, "Ws"),
                  numpy_helper.from_array(np.zeros(w.shape[axis], np.int8), "Wz")]
        nodes.append(helper.make_node("DequantizeLinear", ["Wq", "Ws", "Wz"], ["W"],
                                      axis=axis))
    else:
        inits.append(numpy_helper.from_array(w, "W"))
    inputs = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32),
                                             "B"))
        inputs.append("B")
    nodes.append(helper.make_node("ConvTranspose", inputs, ["y"], name="up",
                                  kernel_shape=[kernel, kernel], strides=[stride, stride],
                                  pads=pads, group=group,
                                  output_padding=[output_padding] * 2))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                   [1, c_in, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c_out, "OH", "OW"])],
        inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(("c_in", "c_out", "kernel", "stride", "pads", "bias", "dq"), [
    (3, 3, 16, 8, [0, 0, 0, 0], False, None),      # FCN-8s's upscore8 (paper padding)
    (21, 21, 64, 32, [16, 16, 16, 16], False, None),  # fcn_resnet18's x32 head
    (5, 7, 12, 4, [1, 2, 3, 0], True, None),       # 3 taps, uneven pads, a bias
    (4, 6, 8, 4, [2, 2, 2, 2], False, 1),          # INT8 weight per output channel
    (4, 6, 8, 4, [2, 2, 2, 2], True, 0),           # INT8 weight per input channel
])
def test_rewrite_computes_the_same_output(c_in, c_out, kernel, stride, pads, bias, dq) -> None:
    model = _deconv_graph(c_in, c_out, kernel, stride, pads, bias=bias, quantized_weight=dq)
    x = np.random.default_rng(1).standard_normal((1, c_in, 9, 13)).astype(np.float32)
    expected = _run(model, x)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert rewrite_conv_transposes(rewritten) == 1
    ops = [n.op_type for n in rewritten.graph.node]
    assert "ConvTranspose" not in ops and ops.count("DequantizeLinear") == (dq is not None)
    names = {i.name for i in rewritten.graph.initializer}
    assert not names & {"W", "Wq", "Ws", "Wz"}  # the old weight is gone with its node
    if dq is not None:  # the Conv's weight stays int8 behind its own DequantizeLinear
        conv = next(n for n in rewritten.graph.node if n.op_type == "Conv")
        producer = next(n for n in rewritten.graph.node if conv.input[1] in n.output)
        assert producer.op_type == "DequantizeLinear"
        assert numpy_helper.to_array(next(
            i for i in rewritten.graph.initializer if i.name == producer.input[0])).dtype == np.int8
    onnx.checker.check_model(rewritten)
    got = _run(rewritten, x)
    assert got.shape == expected.shape
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("change", [dict(stride=2, kernel=4), dict(group=3),
                                    dict(output_padding=1), dict(kernel=12, stride=8)])
def test_rewrite_leaves_other_conv_transposes(change) -> None:
    """U-Net's x2 upsamplers, grouped or output-padded ones and kernels that are no
    multiple of the stride stay ConvTranspose."""
    args = dict(c_in=3, c_out=3, kernel=16, stride=8, pads=[0, 0, 0, 0]) | change
    group = args.pop("group", 1)
    output_padding = args.pop("output_padding", 0)
    model = _deconv_graph(**args, group=group, output_padding=output_padding)
    assert rewrite_conv_transposes(model) == 0
    assert [n.op_type for n in model.graph.node] == ["ConvTranspose"]


def test_rewritten_onnx_skips_files_without_conv_transpose(tmp_path: Path) -> None:
    plain = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])]),
        opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(plain, str(tmp_path / "relu.onnx"))
    assert rewritten_onnx(tmp_path / "relu.onnx", wire_graph(tmp_path / "relu.onnx")) is None
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xff not a model")
    with pytest.raises(ArtifactError):  # the runner reads the file's graph once, first
        wire_graph(tmp_path / "junk.onnx")
    onnx.save(_deconv_graph(3, 3, 16, 8, [0, 0, 0, 0]), str(tmp_path / "up.onnx"))
    data, count = rewritten_onnx(tmp_path / "up.onnx", wire_graph(tmp_path / "up.onnx"))
    assert count == 1 and onnx.load_from_string(data).graph.node[0].op_type == "Conv"


def test_openvino_runner_reads_the_rewrite_and_agrees(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from segdeploy.runtime.openvino_runner import OpenVINORunner

    path = tmp_path / "up.onnx"
    model = _deconv_graph(3, 3, 16, 8, [4, 4, 4, 4], bias=True)
    onnx.save(model, str(path))
    x = np.random.default_rng(2).standard_normal((1, 3, 20, 17)).astype(np.float32)
    runner = OpenVINORunner(path, precision="fp32", threads=2).activate()
    try:
        assert runner.subpixel_rewrites == 1
        got = runner.infer({"x": x})["y"]
    finally:
        runner.close()
    expected = _run(model, x)
    np.testing.assert_allclose(got, expected, atol=1e-4 * float(np.abs(expected).max()))
