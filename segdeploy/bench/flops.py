"""Arithmetic work of an ONNX graph and the machine's matrix-multiply peak.

Achieved GFLOP/s (graph FLOPs / latency) against the measured sgemm peak says how far a
backend is from what the hardware can do. FLOPs count 2 per multiply-accumulate in Conv,
ConvTranspose, Gemm and MatMul nodes (the bulk of a segmentation network's work); bias adds,
activations, pooling and resizes are left out. Shapes come from onnx shape inference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segdeploy.errors import require

COUNTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@dataclass
class FlopCount:
    """FLOPs of one graph at one input shape, with the nodes whose shapes stayed unknown."""

    total: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    nodes: int = 0
    #: counted nodes whose shapes shape inference could not resolve (not in `total`)
    unresolved: list[str] = field(default_factory=list)

    @property
    def gflops(self) -> float:
        return self.total / 1e9

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "gflops": self.gflops, "by_op": dict(self.by_op),
                "nodes": self.nodes, "unresolved": list(self.unresolved)}


def _static_shape(tensor_type: Any) -> list[int] | None:
    if not tensor_type.HasField("shape"):
        return None
    dims = []
    for d in tensor_type.shape.dim:
        if not d.HasField("dim_value") or d.dim_value <= 0:
            return None
        dims.append(int(d.dim_value))
    return dims


def _fix_inputs(model: Any, input_shapes: Mapping[str, Sequence[int]]) -> None:
    """Replace symbolic input dims (batch, height, width) by the concrete shape to count at.

    Exporters also write value_info and output shapes with symbolic dims; shape inference
    would keep those, so they are cleared and inferred again from the concrete inputs.
    """
    del model.graph.value_info[:]
    for out in model.graph.output:
        if out.type.HasField("tensor_type"):
            out.type.tensor_type.ClearField("shape")
    inits = {i.name for i in model.graph.initializer}
    for inp in model.graph.input:
        if inp.name in inits or inp.name not in input_shapes:
            continue
        shape = list(input_shapes[inp.name])
        dims = inp.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            from segdeploy.errors import UsageError

            raise UsageError(f"input {inp.name!r} has rank {len(dims)} but the shape given "
                             f"has {len(shape)} dims", expected=f"{len(dims)} dims")
        for d, v in zip(dims, shape, strict=True):
            d.Clear()
            d.dim_value = int(v)


def _shape_table(model: Any) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for init in model.graph.initializer:
        shapes[init.name] = [int(d) for d in init.dims]
    for vi in list(model.graph.input) + list(model.graph.value_info) + list(model.graph.output):
        if vi.type.HasField("tensor_type"):
            s = _static_shape(vi.type.tensor_type)
            if s is not None:
                shapes[vi.name] = s
    for node in model.graph.node:  # Constant weights (some exporters fold them so)
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            shapes[node.output[0]] = [int(d) for d in node.attribute[0].t.dims]
    return shapes


def _node_flops(node: Any, shapes: Mapping[str, list[int]]) -> int | None:
    """2 x multiply-accumulates of one node, or None when a needed shape is unknown."""
    get = shapes.get
    op = node.op_type
    if op == "Conv":
        w, y = get(node.input[1]), get(node.output[0])
        if w is None or y is None:
            return None
        return 2 * math.prod(y) * math.prod(w[1:])  # each output: Cin/groups * kernel MACs
    if op == "ConvTranspose":
        x, w = get(node.input[0]), get(node.input[1])
        if x is None or w is None:
            return None
        return 2 * math.prod(x) * math.prod(w[1:])  # each input: Cout/groups * kernel MACs
    if op == "Gemm":
        a, y = get(node.input[0]), get(node.output[0])
        if a is None or y is None:
            return None
        trans_a = next((at.i for at in node.attribute if at.name == "transA"), 0)
        k = a[0] if trans_a else a[1]
        return 2 * math.prod(y) * k
    if op == "MatMul":
        a, y = get(node.input[0]), get(node.output[0])
        if a is None or y is None:
            return None
        return 2 * max(math.prod(y), 1) * a[-1]
    return 0


def count_flops(model: Any, input_shapes: Mapping[str, Sequence[int]] | None = None) -> FlopCount:
    """Count the FLOPs of an onnx.ModelProto at concrete input shapes (pure: the model is copied).

    `input_shapes` maps graph input names to full shapes, e.g. {"input": [1, 3, 197, 233]};
    inputs left out keep the shapes written in the graph.
    """
    onnx = require("onnx", extra="torch", purpose="to count the FLOPs of an ONNX graph")
    work = onnx.ModelProto()
    work.CopyFrom(model)
    if len(work.functions):
        from onnx import inliner

        work = inliner.inline_local_functions(work)
    _fix_inputs(work, input_shapes or {})
    inferred = onnx.shape_inference.infer_shapes(work, strict_mode=False, data_prop=True)
    result = _count(inferred)
    if result.unresolved:  # e.g. a crop whose offsets are computed from shapes (FCN skips)
        symbolic = _symbolic_shapes(work)
        if symbolic is not None:
            result = _count(symbolic)
    return result


def _symbolic_shapes(model: Any) -> Any:
    """ONNX Runtime's symbolic shape inference (sympy), which follows shape arithmetic through
    Shape/Gather/Slice chains that onnx's own inference gives up on; None where unavailable."""
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        return SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception:  # noqa: BLE001 - sympy missing or an op it does not know: keep onnx's
        return None


def _count(model: Any) -> FlopCount:
    shapes = _shape_table(model)
    result = FlopCount()
    for node in model.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        result.nodes += 1
        f = _node_flops(node, shapes)
        if f is None:
            result.unresolved.append(node.name or node.output[0])
            continue
        result.total += f
        result.by_op[node.op_type] = result.by_op.get(node.op_type, 0) + f
    return result


def count_flops_file(path: str, input_shapes: Mapping[str, Sequence[int]]) -> FlopCount:
    """count_flops on an .onnx file (external data not needed: only shapes are read)."""
    onnx = require("onnx", extra="torch", purpose="to count the FLOPs of an ONNX graph")
    return count_flops(onnx.load(str(path), load_external_data=False), input_shapes)


def sgemm_peak_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Best float32 matrix-multiply rate numpy's BLAS reaches here (GFLOP/s, 2 n^3 per call)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty((n, n), dtype=np.float32)
    np.matmul(a, b, out=out)  # warm-up: threads spun up, pages touched
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n**3 / best / 1e9


def achieved_gflops(flops: int, latency_ms: float) -> float:
    """GFLOP/s reached by running `flops` of work in `latency_ms` milliseconds."""
    return flops / (latency_ms / 1e3) / 1e9 if latency_ms > 0 else float("nan")
