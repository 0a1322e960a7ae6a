"""Which integer types an INT8 (QDQ) graph quantizes its activations and weights to, read from
the file's bytes (onnx_wire: no onnx package, no session).

The flavour decides where the file runs right: OpenVINO's CPU plugin computes U8S8 files
(uint8 activations, int8 weights: ONNX Runtime's quantize_static default, and `segdeploy
quantize`'s) as ONNX Runtime does, but ran S8S8 and U8U8 files wrongly on an AVX2 EPYC (92 %
and 6.8 % argmax agreement), and ONNX Runtime ran U8U8 slower than FP32 there (issue 22).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from segdeploy.errors import ArtifactError
from segdeploy.onnx_wire import NotOnnxError, WireGraph, scan_graph

#: TensorProto.DataType codes of the quantized types (onnx/onnx.proto)
TYPE_NAMES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 21: "uint4",
              22: "int4", 17: "float8e4m3fn", 19: "float8e5m2"}
_SHORT = {"uint8": "U8", "int8": "S8", "uint16": "U16", "int16": "S16", "uint4": "U4",
          "int4": "S4"}
#: QuantizeLinear without a zero point makes uint8 (before opset 21's output_dtype)
_DEFAULT_ZERO_POINT = "uint8"


@dataclass(frozen=True)
class QdqTypes:
    """The integer types of a QDQ graph's quantized activations and weights (int32 biases
    are left out); sets, since a third-party graph may mix them."""

    activations: frozenset[str]
    weights: frozenset[str]

    @property
    def label(self) -> str:
        """"U8S8" (uint8 activations, int8 weights), "S8S8", "U8U8"; "+"-joined when mixed."""
        def short(types: frozenset[str]) -> str:
            return "+".join(sorted(_SHORT.get(t, t) for t in types)) or "none"
        return short(self.activations) + short(self.weights)

    @property
    def openvino_runs_right(self) -> bool:
        """False for int8 activations or uint8 weights (S8S8, U8U8): what OpenVINO mis-ran."""
        return "int8" not in self.activations and "uint8" not in self.weights


def classify(graph: WireGraph) -> QdqTypes | None:
    """The QDQ types of a graph, None when it has no QuantizeLinear / DequantizeLinear.

    A QuantizeLinear of a constant (initializer or Constant output) quantizes a weight,
    of anything else an activation: its type is its zero point's. A DequantizeLinear of a
    constant integer tensor is a weight quantized ahead of time: its type is that tensor's."""
    constants = dict(graph.initializer_types)
    constants.update({out: n.value_type for n in graph.nodes if n.op_type == "Constant"
                      and n.value_type is not None for out in n.outputs[:1]})
    activations: set[str] = set()
    weights: set[str] = set()
    found = False
    for node in graph.nodes:
        if node.domain not in ("", "ai.onnx", "com.microsoft") or not node.inputs:
            continue
        if node.op_type == "QuantizeLinear":
            found = True
            zero = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] else None
            kind = TYPE_NAMES.get(constants.get(zero, 0), "?") if zero else _DEFAULT_ZERO_POINT
            (weights if node.inputs[0] in constants else activations).add(kind)
        elif node.op_type == "DequantizeLinear":
            found = True
            if node.inputs[0] in constants:
                kind = TYPE_NAMES.get(constants[node.inputs[0]], "?")
                if kind != "int32":  # biases
                    weights.add(kind)
    return QdqTypes(frozenset(activations), frozenset(weights)) if found else None


def wire_graph(path: str | os.PathLike[str]) -> WireGraph:
    """The file's nodes and initializer types (onnx_wire.scan_graph); ArtifactError for a
    file that cannot be read or is no ONNX model."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return scan_graph(fh, path.stat().st_size)
    except OSError as exc:
        raise ArtifactError(f"cannot read {path} ({exc.strerror or exc})",
                            fix="check the path and its permissions") from None
    except NotOnnxError as exc:
        raise ArtifactError(f"{path} is not a complete ONNX model ({exc})",
                            fix="`segdeploy info FILE` says what the file is") from None


def qdq_types(path: str | os.PathLike[str]) -> QdqTypes | None:
    """The QDQ types of an ONNX file (None: no QDQ nodes); ArtifactError for other bytes."""
    return classify(wire_graph(path))
