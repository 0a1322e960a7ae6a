"""FLOPs counted from an ONNX graph match hand-computed values on a tiny graph."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from segdeploy.bench.flops import achieved_gflops, count_flops, sgemm_peak_gflops  # noqa: E402


def _tiny_graph() -> onnx.ModelProto:
    """Conv 3->8 k3, grouped Conv 8->8 k3, ConvTranspose 8->4 k2 s2, pool, Gemm, MatMul."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         group=4),
        helper.make_node("ConvTranspose", ["c2", "w3"], ["up"], kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Relu", ["up"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w4"], ["h"]),
        helper.make_node("MatMul", ["h", "w5"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 6])],
        [init("w1", 8, 3, 3, 3), init("w2", 8, 2, 3, 3), init("w3", 8, 4, 2, 2),
         init("w4", 4, 5), init("w5", 5, 6)])
    # symbolic shapes an exporter leaves behind must not hide the concrete ones
    graph.value_info.append(
        helper.make_tensor_value_info("c2", TensorProto.FLOAT, ["batch", 8, "height", "width"]))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _hand_count(n: int, h: int, w: int) -> dict[str, int]:
    conv1 = 2 * (n * 8 * h * w) * (3 * 3 * 3)  # each output pixel: 3 in-channels x 3x3 MACs
    conv2 = 2 * (n * 8 * h * w) * (2 * 3 * 3)  # grouped: 8/4 = 2 in-channels per output
    convt = 2 * (n * 8 * h * w) * (4 * 2 * 2)  # each input pixel scatters to 4 outs x 2x2
    gemm = 2 * n * 5 * 4
    matmul = 2 * n * 6 * 5
    return {"Conv": conv1 + conv2, "ConvTranspose": convt, "Gemm": gemm, "MatMul": matmul}


@pytest.mark.parametrize("shape", [(1, 3, 10, 12), (2, 3, 7, 5)])
def test_count_flops_matches_hand_count(shape: tuple[int, int, int, int]) -> None:
    model = _tiny_graph()
    result = count_flops(model, {"x": list(shape)})
    expected = _hand_count(shape[0], shape[2], shape[3])
    assert result.by_op == expected
    assert result.total == sum(expected.values())
    assert result.nodes == 5 and result.unresolved == []


def test_count_flops_leaves_model_untouched_and_reports_unknown_shapes() -> None:
    model = _tiny_graph()
    before = model.SerializeToString()
    result = count_flops(model)  # symbolic H, W: convolutions cannot be counted
    assert model.SerializeToString() == before
    assert len(result.unresolved) >= 3


def test_achieved_and_peak_are_positive() -> None:
    assert achieved_gflops(2_000_000_000, 1000.0) == pytest.approx(2.0)
    assert sgemm_peak_gflops(n=64, repeats=1) > 0


def _cropped_conv() -> onnx.ModelProto:
    """x[:, :, 1:H-2] -> Conv 3->4 k3 pad 1: the crop end is computed from Shape (as in the
    FCN skip crops), which onnx's own shape inference does not follow."""
    ints = {"i2": np.array(2, np.int64), "ax0": np.array([0], np.int64),
            "st": np.array([1], np.int64), "ax2": np.array([2], np.int64),
            "two": np.array(2, np.int64)}
    inits = [numpy_helper.from_array(v, k) for k, v in ints.items()]
    inits.append(numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "w"))
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i2"], ["h"], axis=0),
             helper.make_node("Sub", ["h", "two"], ["e"]),
             helper.make_node("Unsqueeze", ["e", "ax0"], ["e1"]),
             helper.make_node("Slice", ["x", "st", "e1", "ax2"], ["xs"]),
             helper.make_node("Conv", ["xs", "w"], ["y"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "crop",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_count_flops_follows_shape_arithmetic() -> None:
    pytest.importorskip("sympy")  # ONNX Runtime's symbolic shape inference needs it
    result = count_flops(_cropped_conv(), {"x": [1, 3, 10, 12]})
    rows = (10 - 2) - 1  # Slice 1:H-2 of H = 10
    assert result.unresolved == []
    assert result.total == 2 * (1 * 4 * rows * 12) * (3 * 3 * 3)
