"""Mixed FP16 conversion on a hand-built graph (no torch): I/O stay float32, Resize scales stay
float32, and a tensor too large for float16 stays float32 end to end."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from segdeploy.errors import UsageError
from segdeploy.export.fp16 import convert_to_mixed_fp16

BIG = 1.0e5  # beyond float16's 65504


def _graph() -> onnx.ModelProto:
    """conv -> x BIG -> relu -> resize x2 (constant scales) -> x 1/BIG -> 1x1 conv."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(np.array(BIG, np.float32), "big"),
        numpy_helper.from_array(np.array(1.0 / BIG, np.float32), "small"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(rng.normal(0, 0.5, (3, 4, 1, 1)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["c1", "big"], ["m1"], name="scale_up"),
        helper.make_node("Relu", ["m1"], ["r1"], name="relu"),
        helper.make_node("Resize", ["r1", "", "scales"], ["up"], name="resize", mode="linear"),
        helper.make_node("Mul", ["up", "small"], ["m2"], name="scale_down"),
        helper.make_node("Conv", ["m2", "w2"], ["logits"], name="head"),
    ]
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3, "h2", "w2"])
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def test_large_activations_stay_float32_and_io_is_float32() -> None:
    model = _graph()
    rng = np.random.default_rng(1)
    feeds = [{"input": rng.normal(0, 1, (2, 3, 17, 23)).astype(np.float32)}]
    mixed, reasons = convert_to_mixed_fp16(model, feeds, bound=512.0)

    assert mixed.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert mixed.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    inits = {t.name: t for t in mixed.graph.initializer}
    assert inits["scales"].data_type == TensorProto.FLOAT  # Resize scales must be float32
    assert any(t.data_type == TensorProto.FLOAT16 for t in mixed.graph.initializer)
    # the producer of the huge tensor and its readers are reported with the measured range
    assert "scale_up" in reasons and "> bound 512" in reasons["scale_up"]
    assert "relu" in reasons
    assert "conv1" not in reasons  # small activations are converted
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT  # input left untouched

    x = rng.normal(0, 1, (1, 3, 31, 45)).astype(np.float32)  # another size: dims stay dynamic
    ref, got = _run(model, x), _run(mixed, x)
    assert got.dtype == np.float32 and got.shape == (1, 3, 62, 90)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=2e-2, atol=2e-2 * float(np.abs(ref).max()))


def test_naive_float16_overflows_on_the_same_graph() -> None:
    """Why the bound exists: a plain conversion turns the 1e5-scaled tensor into inf."""
    from onnxconverter_common import float16

    model = _graph()
    with pytest.warns(UserWarning, match="truncated"):
        naive = float16.convert_float_to_float16(model, keep_io_types=True,
                                                 max_finite_val=65504.0)
    x = np.random.default_rng(2).normal(0, 1, (1, 3, 15, 15)).astype(np.float32)
    out = _run(naive, x)
    assert not np.all(np.isfinite(out)) or np.abs(out - _run(model, x)).max() > 1.0


def test_bound_decides_what_stays_float32() -> None:
    model = _graph()
    feeds = [{"input": np.random.default_rng(3).normal(0, 1, (1, 3, 9, 9)).astype(np.float32)}]
    _, loose = convert_to_mixed_fp16(model, feeds, bound=1e9)
    _, tight = convert_to_mixed_fp16(model, feeds, bound=1e-3)
    # with a huge bound only the node holding a constant float16 cannot store stays float32
    assert set(loose) == {"scale_up"} and "float16 range" in loose["scale_up"]
    assert {"conv1", "scale_up", "relu", "head"} <= set(tight)


def test_needs_sample_inputs() -> None:
    with pytest.raises(UsageError, match="sample inputs"):
        convert_to_mixed_fp16(_graph(), [])
