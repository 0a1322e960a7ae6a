"""Putting nodes of a QDQ graph back in float: all of them is the FP32 graph bit for bit, some
of them leaves no Q/DQ on their inputs; FLOPs per layer; the fallback order."""

from __future__ import annotations

import collections

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from segdeploy.export.qdq_edit import (  # noqa: E402
    QDQ_OPS,
    dequantize_nodes,
    layer_costs,
    quantized_nodes,
)
from segdeploy.export.quantize import fallback_order  # noqa: E402
from tests.export.export_test_models import UserNet  # noqa: E402


class ConcatNet(UserNet):
    """UserNet plus a Concat skip: Conv, MaxPool, Resize, Add and Concat all get Q/DQ."""

    def __init__(self) -> None:
        super().__init__(in_channels=1, num_classes=3)
        self.mix = torch.nn.Conv2d(16, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.a(x))
        z = torch.relu(self.b(torch.nn.functional.max_pool2d(y, 2, ceil_mode=True)))
        z = torch.nn.functional.interpolate(z, size=y.shape[-2:], mode="bilinear")
        return self.head(torch.relu(self.mix(torch.cat([y + z, z], 1))))


def _feed(seed: int, h: int = 45, w: int = 61) -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(seed).random((1, 1, h, w), dtype=np.float32)}


class _Reader:
    def __init__(self) -> None:
        self.items = iter([_feed(i) for i in range(4)])

    def get_next(self):
        return next(self.items, None)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> tuple[object, object]:
    """(FP32 ModelProto, every-layer QDQ ModelProto) of ConcatNet, made the way quantize does."""
    from onnxruntime import quantization as q

    tmp = tmp_path_factory.mktemp("qdq")
    torch.manual_seed(0)
    fp32 = tmp / "m.onnx"
    torch.onnx.export(ConcatNet().eval(), torch.randn(1, 1, 45, 61), str(fp32), dynamo=False,
                      input_names=["input"], output_names=["logits"], opset_version=17,
                      dynamic_axes={"input": {2: "h", 3: "w"}})
    qdq = tmp / "m.qdq.onnx"
    q.quantize_static(str(fp32), str(qdq), _Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, weight_type=q.QuantType.QInt8,
                      activation_type=q.QuantType.QUInt8)
    return onnx.load(str(fp32)), onnx.load(str(qdq))


def _run(model, feeds) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def test_every_node_in_float_is_fp32_bit_for_bit(graphs) -> None:
    fp32, qdq = graphs
    quantized_ops = {n.op_type for n in qdq.graph.node
                     if any(i.endswith("DequantizeLinear_Output") for i in n.input)}
    assert {"Conv", "MaxPool", "Concat", "Resize", "Add"} <= quantized_ops  # Q/DQ everywhere
    back = dequantize_nodes(qdq, fp32, [n.name for n in fp32.graph.node])
    counts = collections.Counter(n.op_type for n in back.graph.node)
    assert not set(counts) & set(QDQ_OPS)
    assert counts == collections.Counter(n.op_type for n in fp32.graph.node)  # Relus back too
    for seed, size in ((1, (45, 61)), (2, (64, 80))):
        feeds = _feed(seed, *size)
        assert np.array_equal(_run(back, feeds), _run(fp32, feeds))
        assert not np.array_equal(_run(qdq, feeds), _run(fp32, feeds))  # the QDQ one differs


def test_some_nodes_in_float_read_no_dequantized_tensor(graphs) -> None:
    fp32, qdq = graphs
    convs = quantized_nodes(qdq)
    assert len(convs) == 4
    chosen = [convs[0], convs[-1]]
    edited = dequantize_nodes(qdq, fp32, chosen)
    producers = {o: n.op_type for n in edited.graph.node for o in n.output}
    inits = {i.name for i in edited.graph.initializer}
    for node in (n for n in edited.graph.node if n.name in chosen):
        assert all(producers.get(i) not in QDQ_OPS for i in node.input)
        weight = next(i for i in edited.graph.initializer if i.name == node.input[1])
        assert weight.data_type == onnx.TensorProto.FLOAT and node.input[1] in inits
    assert set(quantized_nodes(edited)) == set(convs) - set(chosen)
    head = next(n for n in edited.graph.node if n.name == convs[-1])
    # the quantizer folded the Relu before the head into a range: in float it is back
    assert producers[head.input[0]] == "Relu"
    feeds = _feed(3)
    err_all = np.abs(_run(qdq, feeds) - _run(fp32, feeds)).max()
    err_some = np.abs(_run(edited, feeds) - _run(fp32, feeds)).max()
    assert err_some < err_all  # the float head's output is no longer quantized


def test_unknown_node_is_refused(graphs) -> None:
    fp32, qdq = graphs
    with pytest.raises(KeyError, match="not in the FP32 graph"):
        dequantize_nodes(qdq, fp32, ["no_such_node"])


def test_layer_costs_are_the_convolutions_flops(graphs) -> None:
    fp32, _ = graphs
    costs = layer_costs(fp32, _feed(0, 45, 61))
    assert len(costs) == 4
    by_weight = {n.input[1]: n.name for n in fp32.graph.node if n.op_type == "Conv"}
    first = by_weight[next(k for k in by_weight if k.startswith("a."))]
    assert costs[first] == 2 * 45 * 61 * 8 * 1 * 3 * 3  # Cout x H x W outputs, Cin x 3 x 3 MACs
    head = by_weight[next(k for k in by_weight if k.startswith("head."))]
    assert costs[head] == 2 * 45 * 61 * 3 * 8


def test_fallback_order_puts_cheap_gains_first() -> None:
    sensitivity = {"first": 0.2, "big": 0.5, "head": 0.01, "mid": 0.6, "noise": -0.05,
                   "zero": 0.0}
    share = {"first": 0.3, "big": 40.0, "head": 1.0, "mid": 3.0, "noise": 5.0, "zero": 1.0}
    order = fallback_order(sensitivity, share)
    # cheap gainers first (0.67 then 0.01 points per %), even before "mid" (0.2 per %)
    assert order[:4] == ["first", "head", "mid", "big"]
    assert order[4:] == ["zero", "noise"]  # no gain: last, by gain
