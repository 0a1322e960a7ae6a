"""What precision an ONNX graph computes in, read from its nodes rather than its label.

A copy of our ONNX quantized by ONNX Runtime's `quantize_static` keeps the metadata that
says fp32, and an NVIDIA ModelOpt output has none at all; gates and builds must follow what
the graph is: QuantizeLinear/DequantizeLinear (or integer conv/matmul ops) -> int8, float16
tensors in compute -> fp16, else fp32. Needs the `onnx` package (segdeploy[torch]).
"""

from __future__ import annotations

from pathlib import Path

from segdeploy.precision import Precision

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear",
                     "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})


def graph_precision(path: str | Path) -> Precision:
    """"int8", "fp16" or "fp32" for the ONNX file at `path` (weights are not loaded)."""
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    if any(n.op_type in QDQ_OPS for n in graph.node):
        return Precision.INT8
    fp16 = TensorProto.FLOAT16
    if any(i.data_type == fp16 for i in graph.initializer):
        return Precision.FP16
    for n in graph.node:
        if n.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in n.attribute):
            return Precision.FP16
    if any(v.type.tensor_type.elem_type == fp16 for v in graph.value_info):
        return Precision.FP16
    return Precision.FP32


def effective_precision(path: str | Path, label: str | Precision | None
                        ) -> tuple[Precision, str | None]:
    """(precision to judge and build by, note when the label disagrees) for an ONNX file.

    Evidence in the graph (QDQ nodes, float16 tensors) wins over the label. A graph with no
    such evidence keeps an "fp16" label: a mixed-precision export may keep every node float32
    when all activations exceed the bound."""
    actual = graph_precision(path)
    if actual is Precision.FP32 and label:
        return Precision.parse(label), None
    if label and label != actual:
        return actual, (f"the ONNX metadata says {label} but the graph computes in {actual}: "
                        f"judged as {actual}")
    return actual, None
