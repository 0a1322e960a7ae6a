"""Large-stride ConvTranspose as Conv + DepthToSpace + Slice, for OpenVINO only.

OpenVINO 2026.4's CPU plugin runs FCN's x8 upsampler (ConvTranspose, kernel 16, stride 8,
3 classes) at 394x466 in 25 ms with two threads and in 1.9 ms with one: at that size its
two-thread ConvolutionBackpropData is 12x slower than one thread, and it was 72 % of the INT8
FCN-8s run (BENCHMARKS.md). The same layer written as a sub-pixel convolution (a
(kernel / stride)-tap Conv to stride * stride * C channels, DepthToSpace, then the pads cut
off) computes the same sums in another order: 0.5 ms there, the whole INT8 run 34 -> 9 ms.

Exactly which ConvTranspose: 2-D, one group, no dilation or output padding, explicit pads,
the same stride s >= MIN_STRIDE on both axes, a kernel that is a multiple of s, and a
constant weight (an initializer, or a DequantizeLinear of one, which stays quantized).
Everything else is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.onnx_wire import WireGraph

#: rewrite upsamplers of at least this stride (FCN's x8 / x32 heads; U-Net's x2 ones and
#: FCN's x2 ones were not slow)
MIN_STRIDE = 4
#: the ONNX domain's names: a ConvTranspose of another domain is left alone
_ONNX_DOMAINS = ("", "ai.onnx")


def rewrite_conv_transposes(model: Any) -> int:
    """Rewrite the large-stride ConvTransposes of an onnx ModelProto in place; how many."""
    graph = model.graph
    done = 0
    for index in reversed(range(len(graph.node))):
        node = graph.node[index]
        if node.op_type != "ConvTranspose" or node.domain not in _ONNX_DOMAINS:
            continue
        plan = _plan(graph, node)
        if plan is None:
            continue
        nodes, initializers = _subpixel_nodes(node, *plan)
        del graph.node[index]
        for offset, new in enumerate(nodes):
            graph.node.insert(index + offset, new)
        graph.initializer.extend(initializers)
        done += 1
    if done:
        _drop_unused(graph)
    return done


def _drop_unused(graph: Any) -> None:
    """Remove what only the rewritten ConvTransposes used (their weights' DequantizeLinear
    nodes and initializers); not in a graph with subgraphs (If, Loop), whose bodies may read
    outer names."""
    from onnx import AttributeProto

    if any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
           for n in graph.node for a in n.attribute):
        return
    while True:
        used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        dead = [k for k, n in enumerate(graph.node) if not any(o in used for o in n.output)]
        if not dead:
            break
        for k in reversed(dead):
            del graph.node[k]
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    keep = [i for i in graph.initializer if i.name in used]
    if len(keep) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(keep)


def _plan(graph: Any, node: Any) -> tuple[int, list[int], _Weight, np.ndarray | None,
                                          list[str] | None] | None:
    """(stride, pads, weight, bias, the inputs of the QuantizeLinear that quantizes its
    output) of a ConvTranspose this rewrite covers, else None."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    weight = _constant(graph, node.input[1])
    if weight is None or weight.value.ndim != 4:
        return None
    kernel = list(attrs.get("kernel_shape", weight.value.shape[2:]))
    strides = list(attrs.get("strides", [1, 1]))
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if (attrs.get("group", 1) != 1 or any(d != 1 for d in attrs.get("dilations", [1, 1]))
            or any(attrs.get("output_padding", [0, 0])) or "output_shape" in attrs
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
            or len(strides) != 2 or strides[0] != strides[1] or strides[0] < MIN_STRIDE
            or kernel != list(weight.value.shape[2:]) or kernel[0] != kernel[1]
            or kernel[0] % strides[0] or len(pads) != 4):
        return None
    bias = None
    if len(node.input) > 2 and node.input[2]:
        if (constant := _constant(graph, node.input[2])) is None:
            return None
        bias = constant.value
    return strides[0], pads, weight, bias, _output_quantizer(graph, node.output[0])


def _output_quantizer(graph: Any, name: str) -> list[str] | None:
    """The inputs (scale, zero point) of the per-tensor QuantizeLinear that is the tensor's
    only consumer, else None."""
    from onnx import numpy_helper

    consumers = [n for n in graph.node if name in n.input]
    inits = {i.name: i for i in graph.initializer}
    if len(consumers) != 1 or consumers[0].op_type != "QuantizeLinear" or any(
            i and (i not in inits or numpy_helper.to_array(inits[i]).size != 1)
            for i in consumers[0].input[1:]):
        return None
    return list(consumers[0].input[1:])


@dataclass(frozen=True)
class _Weight:
    """A constant weight: its float value and, from a DequantizeLinear, its integer form
    (q, scale, zero point, axis) so the rewrite keeps it quantized."""

    value: np.ndarray
    quantized: tuple[np.ndarray, np.ndarray, np.ndarray, int] | None = None


def _constant(graph: Any, name: str) -> _Weight | None:
    """An initializer, or a DequantizeLinear of initializers."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    if name in inits:
        return _Weight(numpy_helper.to_array(inits[name]).astype(np.float32))
    producer = next((n for n in graph.node if name in n.output), None)
    if producer is None or producer.op_type != "DequantizeLinear" or any(
            i and i not in inits for i in producer.input) or any(
            a.name == "block_size" and a.i for a in producer.attribute):
        return None
    q, scale = (numpy_helper.to_array(inits[i]) for i in producer.input[:2])
    zero = (numpy_helper.to_array(inits[producer.input[2]]) if len(producer.input) > 2
            and producer.input[2] else np.zeros((), q.dtype))
    axis = next((a.i for a in producer.attribute if a.name == "axis"), 1) % max(q.ndim, 1)
    s, z = scale, zero
    if scale.ndim:  # per-axis: broadcast along `axis`
        shape = [1] * q.ndim
        shape[axis] = -1
        s, z = scale.reshape(shape), np.reshape(zero, shape) if zero.ndim else zero
    value = (q.astype(np.float32) - z.astype(np.float32)) * s.astype(np.float32)
    return _Weight(value, (q, scale, zero, axis))


def _arrange(weight: np.ndarray, stride: int) -> np.ndarray:
    """ConvTranspose weight (C_in, C_out, k, k) -> the sub-pixel Conv's (s*s*C_out, C_in,
    taps, taps): output row y + pad = q*s + r takes input rows q - j with kernel row r + j*s;
    the Conv's tap d reads input row q - (taps - 1) + d, so j = taps - 1 - d. A permutation:
    every element once."""
    s = stride
    c_in, c_out, k, _ = weight.shape
    taps = k // s
    w = weight.reshape(c_in, c_out, taps, s, taps, s)[:, :, ::-1, :, ::-1, :]
    return np.ascontiguousarray(w.transpose(3, 5, 1, 0, 2, 4).reshape(
        s * s * c_out, c_in, taps, taps))


def _subpixel_nodes(node: Any, stride: int, pads: list[int], weight: _Weight,
                    bias: np.ndarray | None,
                    quantizer: list[str] | None) -> tuple[list[Any], list[Any]]:
    """Pad by taps-1, a taps x taps Conv to stride^2 * C_out channels (channel
    (ry * s + rx) * C_out + o holds output pixel (q*s + ry, p*s + rx) of class o),
    DepthToSpace (DCR) and a Slice that removes the ConvTranspose's pads. A quantized weight
    stays quantized (its DequantizeLinear rearranged), so OpenVINO runs the Conv in int8
    like the graph's other quantized layers. Where the output is quantized (per tensor), the
    Conv's output is quantized and dequantized with the same parameters as well, a no-op on
    values (quantizing twice on one grid gives the same integers) that lets OpenVINO fuse the
    quantization into the Conv: without it the int8 Conv wrote bf16 under the bf16 hint and
    the rounding before the quantization cost FCN-8s 0.2 % agreement and 0.3 mIoU at x2."""
    from onnx import helper, numpy_helper

    s = stride
    taps = weight.value.shape[2] // s
    name = (node.name or node.output[0]) + "/subpixel"
    nodes = []
    initializers = [numpy_helper.from_array(np.array([2], np.int64), f"{name}/hw_from"),
                    numpy_helper.from_array(np.array([4], np.int64), f"{name}/hw_to"),
                    numpy_helper.from_array(np.array(pads[:2], np.int64), f"{name}/begin"),
                    numpy_helper.from_array(np.array(pads[2:], np.int64), f"{name}/end_pads"),
                    numpy_helper.from_array(np.array([2, 3], np.int64), f"{name}/axes")]
    if weight.quantized is None:
        initializers.append(numpy_helper.from_array(_arrange(weight.value, s), f"{name}/W"))
    else:
        q, scale, zero, axis = weight.quantized
        # per output channel (axis 1) -> the Conv's axis 0, tiled once per sub-pixel;
        # per input channel (axis 0) -> the Conv's axis 1 as it is
        tiled = scale.ndim and axis == 1
        initializers += [
            numpy_helper.from_array(_arrange(q, s), f"{name}/Wq"),
            numpy_helper.from_array(np.tile(scale, s * s) if tiled else scale, f"{name}/Ws"),
            numpy_helper.from_array(np.tile(zero, s * s) if tiled and zero.ndim else zero,
                                    f"{name}/Wz")]
        nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}/Wq", f"{name}/Ws", f"{name}/Wz"], [f"{name}/W"],
            name=f"{name}/dequantize", axis=0 if tiled else 1))
    conv_inputs = [node.input[0], f"{name}/W"]
    if bias is not None:
        conv_inputs.append(f"{name}/B")
        initializers.append(numpy_helper.from_array(
            np.tile(bias.astype(np.float32), s * s), f"{name}/B"))
    pad = taps - 1
    nodes.append(helper.make_node("Conv", conv_inputs, [f"{name}/conv"], name=f"{name}/conv",
                                  kernel_shape=[taps, taps], pads=[pad] * 4))
    fine = f"{name}/conv"
    if quantizer is not None:
        fine = f"{name}/conv_dq"
        nodes += [helper.make_node("QuantizeLinear", [f"{name}/conv", *quantizer],
                                   [f"{name}/conv_q"], name=f"{name}/quantize"),
                  helper.make_node("DequantizeLinear", [f"{name}/conv_q", *quantizer],
                                   [fine], name=f"{name}/dequantize_out")]
    nodes += [
        helper.make_node("DepthToSpace", [fine], [f"{name}/full"],
                         name=f"{name}/d2s", blocksize=s, mode="DCR"),
        helper.make_node("Shape", [f"{name}/full"], [f"{name}/shape"], name=f"{name}/shape"),
        helper.make_node("Slice", [f"{name}/shape", f"{name}/hw_from", f"{name}/hw_to"],
                         [f"{name}/hw"], name=f"{name}/hw"),
        helper.make_node("Sub", [f"{name}/hw", f"{name}/end_pads"], [f"{name}/end"],
                         name=f"{name}/end"),
        helper.make_node("Slice", [f"{name}/full", f"{name}/begin", f"{name}/end",
                                   f"{name}/axes"], [node.output[0]], name=f"{name}/crop"),
    ]
    return nodes, initializers


def rewritten_onnx(path: Path, graph: WireGraph) -> tuple[bytes, int] | None:
    """The file's bytes with its large-stride ConvTransposes rewritten and how many, or None
    where there is nothing to rewrite (`graph`, the file's byte scan, decides without loading
    the weights) or the onnx package is missing (the `openvino` extra installs it)."""
    if not any(n.op_type == "ConvTranspose" and n.domain in _ONNX_DOMAINS for n in graph.nodes):
        return None
    try:
        import onnx
    except ImportError:
        return None
    model = onnx.load(str(path))
    count = rewrite_conv_transposes(model)
    if not count:
        return None
    try:
        return model.SerializeToString(), count
    except ValueError:  # over protobuf's 2 GB: OpenVINO reads the file as it is
        return None
