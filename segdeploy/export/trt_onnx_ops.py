"""Does TensorRT's ONNX parser accept this graph? Checked against its published operator list.

The lists live in `trt_onnx_ops.json`, transcribed from onnx/onnx-tensorrt
`docs/operators.md` (URL and commit recorded per list): one for TensorRT 8.5/8.6 (opset
<= 17, JetPack 5.1/6.0) and one for TensorRT 10.15 (opset 9-24). An opset-17 graph is checked
against the 8.5 list, newer opsets against the 10.x list. Besides "is the op listed", a few
restrictions that matter for segmentation graphs are checked on attributes (Resize modes,
pooling dilations, constant axes); the rest of a list's notes are reported for reference.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import onnx
from onnx import TensorProto

from segdeploy.export.findings import Finding

DATA_FILE = "trt_onnx_ops.json"
CHECK = "tensorrt-ops"

_RESIZE_COORD = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric",
                 "align_corners"}
_RESIZE_MODES = {"nearest", "linear"}
_NEAREST_MODES = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}
_AXES_INPUT = {"Slice": 3, "Squeeze": 1, "Unsqueeze": 1}
_ONNX_DOMAINS = ("", "ai.onnx")


@functools.cache
def load_op_lists() -> dict[str, Any]:
    """The packaged operator lists (see the module docstring for their source)."""
    text = resources.files("segdeploy.export").joinpath(DATA_FILE).read_text()
    return json.loads(text)


def list_for_opset(opset: int) -> tuple[str, dict[str, Any]]:
    """Pick the TensorRT list a graph of this opset targets: <= 17 -> TRT 8.5/8.6, else 10.x."""
    lists = load_op_lists()["lists"]
    key = "tensorrt-8.5" if opset <= 17 else "tensorrt-10.15"
    return key, lists[key]


def graph_opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in _ONNX_DOMAINS:
            return int(imp.version)
    return 0


def check_trt_support(model: onnx.ModelProto, *, target: str | None = None) -> list[Finding]:
    """Findings (errors: TensorRT will reject the graph; warnings: it may) for `model`."""
    opset = graph_opset(model)
    if target is None:
        target, entry = list_for_opset(opset)
    else:
        entry = load_op_lists()["lists"][target]
    ops = entry["ops"]
    label = f"TensorRT {entry['tensorrt']} ONNX parser"
    findings: list[Finding] = []
    if opset > entry["opset_max"]:
        findings.append(Finding("error", CHECK, f"graph uses opset {opset} but the {label} reads "
                                f"opset <= {entry['opset_max']}",
                                fix="export with --opset 17 for TensorRT 8.5/8.6"))
    functions = {(f.domain, f.name): f for f in model.functions}
    constants = {t.name for t in model.graph.initializer}
    constants.update(n.output[0] for n in model.graph.node if n.op_type == "Constant")
    unsupported: dict[str, list[str]] = {}
    for node in _all_nodes(model.graph, functions):
        if node.domain not in _ONNX_DOMAINS:
            unsupported.setdefault(f"{node.domain}::{node.op_type}", []).append(node.name)
            continue
        info = ops.get(node.op_type)
        if info is None or not info["supported"]:
            unsupported.setdefault(node.op_type, []).append(node.name)
            continue
        findings.extend(_check_restrictions(node, label))
        axes_at = _AXES_INPUT.get(node.op_type)
        if axes_at is not None and len(node.input) > axes_at and node.input[axes_at] \
                and node.input[axes_at] not in constants:
            findings.append(Finding(
                "warning", CHECK, f"{node.op_type} node {node.name} takes its axes from a "
                f"computed tensor; the {label} wants constant axes", nodes=[node.name],
                fix="fold constants first (polygraphy surgeon sanitize --fold-constants)"))
    for op, nodes in sorted(unsupported.items()):
        findings.append(Finding(
            "error", CHECK, f"operator {op} is not supported by the {label} "
            f"({len(nodes)} node(s), e.g. {nodes[0] or '<unnamed>'})", nodes=nodes,
            fix="change the model to avoid this operator, or provide a TensorRT plugin"))
    findings.extend(_check_io_types(model, target, label))
    return findings


def _all_nodes(graph: onnx.GraphProto, functions: dict) -> list[onnx.NodeProto]:
    """Nodes of the graph, its subgraphs and the local functions it calls (TRT inlines them)."""
    out: list[onnx.NodeProto] = []
    stack = list(graph.node)
    seen_functions: set[tuple[str, str]] = set()
    while stack:
        node = stack.pop(0)
        key = (node.domain, node.op_type)
        if key in functions:
            if key not in seen_functions:
                seen_functions.add(key)
                stack.extend(functions[key].node)
            continue
        out.append(node)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                stack.extend(attr.g.node)
            for g in attr.graphs:
                stack.extend(g.node)
    return out


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _check_restrictions(node: onnx.NodeProto, label: str) -> list[Finding]:
    name = node.name or node.op_type
    problems: list[str] = []
    if node.op_type == "Resize":
        coord = _attr(node, "coordinate_transformation_mode", "half_pixel")
        mode = _attr(node, "mode", "nearest")
        if coord not in _RESIZE_COORD:
            problems.append(f"coordinate_transformation_mode {coord!r}")
        if mode not in _RESIZE_MODES:
            problems.append(f"mode {mode!r} (only nearest/linear)")
        if mode == "nearest" and _attr(node, "nearest_mode", "round_prefer_floor") \
                not in _NEAREST_MODES:
            problems.append(f"nearest_mode {_attr(node, 'nearest_mode')!r}")
        if _attr(node, "antialias", 0):
            problems.append("antialias=1")
        if _attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            problems.append("keep_aspect_ratio_policy other than 'stretch'")
    if node.op_type in ("MaxPool", "AveragePool", "LpPool"):
        dilations = _attr(node, "dilations", [])
        if dilations and any(d != 1 for d in dilations):
            problems.append(f"dilations {list(dilations)}")
        if node.op_type == "MaxPool" and len(node.output) > 1 and node.output[1]:
            problems.append("the Indices output")
    if not problems:
        return []
    return [Finding("error", CHECK, f"{node.op_type} node {name} uses {', '.join(problems)}, "
                    f"which the {label} does not support", nodes=[name],
                    fix="change the layer (e.g. bilinear/nearest upsampling without antialias)")]


def _check_io_types(model: onnx.ModelProto, target: str, label: str) -> list[Finding]:
    """TRT 8.x lists no UINT8 tensors; TRT 10 takes UINT8 only as network input/output."""
    findings: list[Finding] = []
    if target != "tensorrt-8.5":
        return findings
    for vi in [*model.graph.input, *model.graph.output]:
        if vi.type.tensor_type.elem_type == TensorProto.UINT8:
            findings.append(Finding(
                "warning", CHECK, f"{vi.name} is uint8, which the {label} operator list "
                "does not include", nodes=[vi.name],
                fix="for TensorRT 8.x export without --with-preprocess (float32 input)"))
    return findings


def restriction_notes(model: onnx.ModelProto, *, target: str | None = None) -> dict[str, str]:
    """The list's restriction notes for the ops this graph uses (for the export report)."""
    if target is None:
        target, entry = list_for_opset(graph_opset(model))
    else:
        entry = load_op_lists()["lists"][target]
    used = {n.op_type for n in model.graph.node if n.domain in _ONNX_DOMAINS}
    return {op: entry["ops"][op]["restrictions"] for op in sorted(used)
            if op in entry["ops"] and entry["ops"][op].get("restrictions")}


def source_of(target: str) -> str:
    entry = load_op_lists()["lists"][target]
    return f"{entry['url']} ({entry['commit']})"
