"""Graph edits on a QDQ model: put chosen nodes back in float without quantizing again.

`segdeploy quantize` quantizes every layer ONCE (one calibration), then derives each fallback
trial from that graph: a node "in float" reads the float tensors and initializers its twin in
the FP32 graph reads, and every QuantizeLinear / DequantizeLinear left without a reader is
dropped. Putting every node back gives the FP32 graph itself (bit for bit under ONNX Runtime):
no Q/DQ pair survives around Concat, MaxPool, Add or Resize. ONNX Runtime's quantizer keeps
node names, which is what pairs a QDQ node with its FP32 twin.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
#: the layers whose weights are quantized: the ones worth INT8, and the ones a fallback keeps float
COMPUTE_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def quantized_nodes(model: Any) -> list[str]:
    """Compute nodes (Conv, ...) reading at least one dequantized tensor, in graph order."""
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in model.graph.node
            if n.op_type in COMPUTE_OPS and any(i in dq_out for i in n.input)]


def dequantize_nodes(qdq: Any, float_model: Any, nodes: Iterable[str]) -> Any:
    """A copy of `qdq` in which `nodes` compute in float on their FP32 inputs and weights.

    Each named node takes its FP32 twin's inputs and outputs (original float initializers, not
    int8 round trips); QuantizeLinear readers of an output the quantizer renamed follow the
    name back; Q/DQ nodes nobody reads any more, and unused initializers, are removed.
    """
    import onnx

    wanted = set(nodes)
    twins = {n.name: n for n in float_model.graph.node if n.name in wanted}
    missing = wanted - set(twins) - {n.name for n in qdq.graph.node if n.op_type in QDQ_OPS}
    if missing:
        raise KeyError(f"nodes not in the FP32 graph: {sorted(missing)[:5]}")
    out = onnx.ModelProto()
    out.CopyFrom(qdq)
    graph = out.graph
    _use_float_names(graph, float_model.graph, wanted)
    for node in graph.node:
        twin = twins.get(node.name)
        if twin is None or node.op_type in QDQ_OPS:
            continue
        del node.input[:]
        node.input.extend(twin.input)
    added = _add_float_initializers(graph, float_model.graph)
    float_outputs = {o for n in graph.node if n.op_type not in QDQ_OPS for o in n.output}
    keep = [n for n in graph.node  # a DQ that made what is float again: an output, a bias
            if n.op_type not in QDQ_OPS or not set(n.output) & (float_outputs | added)]
    keep = _restore_missing_producers(keep, graph, float_model.graph)
    del graph.node[:]
    graph.node.extend(_drop_unread_qdq(keep, {o.name for o in graph.output}))
    _drop_unused_initializers(graph)
    return out


def _use_float_names(graph: Any, float_graph: Any, restored: set[str]) -> None:
    """Name every float tensor of the QDQ graph as the FP32 graph does. ONNX Runtime's
    quantizer drops a Relu whose range the quantization clips anyway and gives the Conv the
    Relu's output name: in the FP32 graph that name is the Relu's output, so a restored
    reader would skip the Relu. A Conv whose FP32 output name a DequantizeLinear took (a
    quantized graph output) keeps its name unless it is restored itself."""
    twins = {n.name: n for n in float_graph.node}
    by_qdq = {o for n in graph.node if n.op_type in QDQ_OPS for o in n.output}
    rename: dict[str, str] = {}
    for node in graph.node:
        twin = twins.get(node.name)
        if twin is None or node.op_type in QDQ_OPS or len(twin.output) != len(node.output):
            continue
        for old, new in zip(node.output, twin.output, strict=True):
            if old != new and (new not in by_qdq or node.name in restored):
                rename[old] = new
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
        for i, name in enumerate(node.output):
            if node.op_type not in QDQ_OPS:
                node.output[i] = rename.get(name, name)


def _add_float_initializers(graph: Any, float_graph: Any) -> set[str]:
    """The FP32 initializers restored nodes read, copied in where the QDQ graph lacks them
    (ONNX Runtime names a dequantized bias as the float one: that DQ must then go)."""
    have = {i.name for i in graph.initializer}
    read = {i for n in graph.node if n.op_type not in QDQ_OPS for i in n.input}
    new = [i for i in float_graph.initializer if i.name in read and i.name not in have]
    graph.initializer.extend(new)
    return {i.name for i in new}


def _restore_missing_producers(nodes: list[Any], graph: Any, float_graph: Any) -> list[Any]:
    """Float nodes the quantizer removed (a Relu folded into a quantization range) copied back
    from the FP32 graph where a restored node reads their output, with what they read."""
    producers = {o: n for n in float_graph.node for o in n.output}
    inits = {i.name for i in graph.initializer} | {i.name for i in graph.input}
    while True:
        made = {o for n in nodes for o in n.output} | inits
        lacking = [t for n in nodes for t in n.input if t and t not in made and t in producers]
        if not lacking:
            return nodes
        extra = list({id(producers[t]): producers[t] for t in lacking}.values())
        graph.initializer.extend(i for i in float_graph.initializer
                                 if i.name in {t for n in extra for t in n.input} - inits)
        inits |= {i.name for i in graph.initializer}
        # a producer goes in before the first reader, so the graph stays topologically sorted
        first = min(i for i, n in enumerate(nodes) if set(n.input) & {o for e in extra
                                                                      for o in e.output})
        nodes = nodes[:first] + extra + nodes[first:]


def _drop_unread_qdq(nodes: list[Any], graph_outputs: set[str]) -> list[Any]:
    """Remove Q/DQ nodes whose outputs nobody reads, repeatedly (a DQ first, then its Q)."""
    while True:
        read = {i for n in nodes for i in n.input} | graph_outputs
        kept = [n for n in nodes if n.op_type not in QDQ_OPS or set(n.output) & read]
        if len(kept) == len(nodes):
            return kept
        nodes = kept


def _drop_unused_initializers(graph: Any) -> None:
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    kept = [i for i in graph.initializer if i.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def layer_costs(float_model: Any, feeds: dict[str, np.ndarray]) -> dict[str, int]:
    """FLOPs (2 x multiply-accumulates) of each compute node at the feeds' size, from the
    shapes one ONNX Runtime run produces (exact where shape inference gives up, e.g. crops)."""
    import onnx
    import onnxruntime as ort

    work = onnx.ModelProto()
    work.CopyFrom(float_model)
    nodes = [n for n in work.graph.node if n.op_type in COMPUTE_OPS]
    present = {o.name for o in work.graph.output}
    wanted = [t for n in nodes for t in (n.input[0], n.output[0])]
    work.graph.output.extend(onnx.ValueInfoProto(name=t) for t in dict.fromkeys(wanted)
                             if t not in present)
    session = ort.InferenceSession(work.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    shapes = {n: v.shape for n, v in zip(names, session.run(names, feeds), strict=True)}
    weights = {i.name: list(i.dims) for i in work.graph.initializer}
    costs = {}
    for n in nodes:
        w = weights.get(n.input[1]) if len(n.input) > 1 else None
        x, y = shapes.get(n.input[0], ()), shapes.get(n.output[0], ())
        if n.op_type == "Conv" and w:
            costs[n.name] = 2 * math.prod(y) * math.prod(w[1:])
        elif n.op_type == "ConvTranspose" and w:
            costs[n.name] = 2 * math.prod(x) * math.prod(w[1:])
        else:  # MatMul / Gemm: output elements x the shared dimension
            costs[n.name] = 2 * math.prod(y) * (x[-1] if len(x) else 1)
    return costs
