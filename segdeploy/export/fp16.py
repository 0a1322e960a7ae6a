"""FP32 ONNX -> mixed-precision FP16 ONNX that TensorRT >= 10 builds as a strongly typed engine.

TensorRT 10+ takes precision from the graph itself (no FP16 builder flag in 11), so the
FP16 engine is built from this file. Graph inputs and outputs stay float32 (callers feed
and read float32), Resize scales stay float32 (the ONNX spec allows no other type), and
every node whose activations would not survive float16 stays float32:

- nodes whose outputs exceed `bound` in magnitude on real sample inputs (measured by
  running the FP32 graph in ONNX Runtime with every intermediate tensor exposed), and the
  nodes that read those tensors, so large values never pass through float16;
- nodes that compute shapes or sizes from `Shape` (float16 holds integers exactly only
  up to 2048);
- casts from integers to float (the uint8 preprocessing input) and ops that have no
  sensible float16 form (ArgMax reads the float32 logits, so `mask` matches `logits`).

The conversion itself is onnxconverter_common's `convert_float_to_float16`. No torch here:
the TensorRT build imports this module too.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from segdeploy.errors import ExportError, UsageError

#: fp16 can represent integers exactly only up to this value
_FP16_EXACT_INT = 2048
_FP16_MAX = 65504.0

#: ops kept float32 whatever their values, with the reason reported to the user
KEEP_FP32_OPS: dict[str, str] = {
    "ArgMax": "argmax reads the float32 logits so `mask` agrees with `logits`",
    "ArgMin": "argmin reads float32 values so ties break as in float32",
    "Greater": "a binary head's threshold compares the float32 logit, so `mask` agrees",
    "Range": "computes index ranges",
    "CumSum": "running sums overflow float16",
    "TopK": "selection should match the float32 ordering",
    "NonMaxSuppression": "box coordinates need float32",
    "RoiAlign": "box coordinates need float32",
    "RandomUniformLike": "no float16 random kernels",
}

_FLOAT_TYPES = (TensorProto.FLOAT,)
_SHAPE_SOURCES = ("Shape", "Size")


def convert_to_mixed_fp16(
    model: onnx.ModelProto,
    sample_feeds: list[dict[str, np.ndarray]],
    *,
    bound: float = 512.0,
) -> tuple[onnx.ModelProto, dict[str, str]]:
    """Return (mixed FP16 model, {node name: reason it stays float32}).

    `sample_feeds` are inputs for the FP32 graph (real images where possible); their
    activation ranges decide which nodes stay float32. The input model is not modified.
    """
    if not sample_feeds:
        raise UsageError("no sample inputs were given for the float16 conversion",
                         expected="at least one feed dict {input name: array}",
                         fix="pass a few representative images (real data where possible)")
    if not bound > 0:
        raise UsageError(f"fp16 bound must be positive, got {bound}",
                         expected="a magnitude such as 512 (float16 max is 65504)")
    from onnxconverter_common import float16

    work = onnx.ModelProto()
    work.CopyFrom(model)
    _name_nodes(work.graph)
    work = onnx.shape_inference.infer_shapes(work)
    # value_info on initializers would make the converter cast float32 weights to float32
    inits = {t.name for t in work.graph.initializer}
    kept = [vi for vi in work.graph.value_info if vi.name not in inits]
    del work.graph.value_info[:]
    work.graph.value_info.extend(kept)

    ranges = measure_activation_ranges(work, sample_feeds)
    reasons = fp32_node_reasons(work, ranges, bound=bound)

    try:
        with warnings.catch_warnings():  # "number ... will be truncated": tiny weights -> 1e-7
            warnings.simplefilter("ignore", UserWarning)
            converted = float16.convert_float_to_float16(
                work, keep_io_types=True, min_positive_val=1e-7, max_finite_val=_FP16_MAX,
                op_block_list=list(KEEP_FP32_OPS), node_block_list=sorted(reasons),
            )
    except Exception as exc:  # the converter raises bare ValueError/AssertionError
        raise ExportError(f"float16 conversion failed ({type(exc).__name__}: {exc})",
                          fix="export without FP16 (--no-fp16) and report the model") from exc
    _restore_float32_resize_inputs(converted, work)
    _restore_float32_outputs(converted, work)
    _remove_cast_round_trips(converted)
    _fix_value_info_types(converted)
    for node in converted.graph.node:
        if node.op_type in KEEP_FP32_OPS and node.name not in reasons:
            reasons[node.name] = KEEP_FP32_OPS[node.op_type]
    _check_converted(converted, sample_feeds[0])
    return converted, reasons


def measure_activation_ranges(model: onnx.ModelProto,
                              sample_feeds: Iterable[dict[str, np.ndarray]]) -> dict[str, float]:
    """Max |value| of every float tensor produced by a node, over all sample feeds.

    Runs the FP32 graph in ONNX Runtime with every node output exposed as a graph output,
    one feed at a time, so peak memory is one forward pass with all activations kept.
    """
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    types = _value_types(probe)
    existing = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in existing and types.get(name) in _FLOAT_TYPES:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
                existing.add(name)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"ONNX Runtime cannot load the FP32 graph to measure activations "
                          f"({exc})", fix="check the FP32 export first") from exc
    names = [o.name for o in session.get_outputs()]
    ranges: dict[str, float] = {}
    for feeds in sample_feeds:
        try:
            outputs = session.run(names, feeds)
        except Exception as exc:
            raise ExportError(f"ONNX Runtime failed on a sample input ({exc})",
                              expected="feeds matching the graph inputs") from exc
        for name, value in zip(names, outputs, strict=True):
            arr = np.asarray(value)
            if arr.size == 0 or not np.issubdtype(arr.dtype, np.floating):
                continue
            peak = float(np.max(np.abs(arr))) if np.all(np.isfinite(arr)) else float("inf")
            ranges[name] = max(ranges.get(name, 0.0), peak)
        del outputs
    return ranges


def fp32_node_reasons(model: onnx.ModelProto, ranges: dict[str, float], *,
                      bound: float) -> dict[str, str]:
    """Decide which nodes stay float32 and say why (the conversion's node block list)."""
    graph = model.graph
    types = _value_types(model)
    constants = _constant_names(graph)
    shape_like = _shape_like_tensors(graph, constants)
    reasons: dict[str, str] = {}

    def keep(node: onnx.NodeProto, why: str) -> None:
        reasons.setdefault(node.name, why)

    big = {name: v for name, v in ranges.items() if not v <= bound}
    init_peaks = {t.name: _peak(t) for t in graph.initializer if t.data_type in _FLOAT_TYPES}
    for node in graph.node:
        float_out = [o for o in node.output if types.get(o) in _FLOAT_TYPES]
        if node.op_type in KEEP_FP32_OPS:
            keep(node, KEEP_FP32_OPS[node.op_type])
        if float_out and all(o in shape_like for o in float_out):
            keep(node, f"computes shapes/sizes (float16 is exact only up to {_FP16_EXACT_INT})")
        if node.op_type == "Cast" and float_out and not _input_is_float(node, types):
            keep(node, "casts integers to float32 (keeps the exact input values)")
        for out in node.output:
            if out in big:
                keep(node, _range_reason(f"output {out}", big[out], bound))
        for inp in node.input:
            if inp in big:
                keep(node, _range_reason(f"input {inp}", big[inp], bound))
            elif init_peaks.get(inp, 0.0) > _FP16_MAX:
                keep(node, f"weight {inp} holds values beyond the float16 range")
        if node.op_type == "Resize" and len(node.input) > 2 and node.input[2] \
                and node.input[2] not in constants:
            keep(node, "Resize scales are computed at run time and must stay float32")
    return reasons


def _range_reason(where: str, peak: float, bound: float) -> str:
    if not np.isfinite(peak):
        return f"{where} is not finite on the sample inputs"
    return f"{where} reaches |x| = {peak:.4g} > bound {bound:g}"


def _peak(t: onnx.TensorProto) -> float:
    arr = numpy_helper.to_array(t)
    return float(np.max(np.abs(arr))) if arr.size else 0.0


def _name_nodes(graph: onnx.GraphProto) -> None:
    """The converter names its casts after nodes: give every node a unique name."""
    seen: set[str] = set()
    for i, node in enumerate(graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def _value_types(model: onnx.ModelProto) -> dict[str, int]:
    graph = model.graph
    types = {vi.name: vi.type.tensor_type.elem_type
             for vi in [*graph.value_info, *graph.input, *graph.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def _constant_names(graph: onnx.GraphProto) -> set[str]:
    names = {t.name for t in graph.initializer}
    names.update(n.output[0] for n in graph.node if n.op_type == "Constant")
    return names


def _shape_like_tensors(graph: onnx.GraphProto, constants: set[str]) -> set[str]:
    """Tensors computed only from Shape/Size outputs and constants (size arithmetic)."""
    shape_like: set[str] = set()
    for node in graph.node:  # nodes are topologically sorted in a valid graph
        if node.op_type in _SHAPE_SOURCES:
            shape_like.update(node.output)
            continue
        inputs = [i for i in node.input if i]
        if inputs and any(i in shape_like for i in inputs) and \
                all(i in shape_like or i in constants for i in inputs):
            shape_like.update(node.output)
    return shape_like


def _input_is_float(node: onnx.NodeProto, types: dict[str, int]) -> bool:
    return types.get(node.input[0]) in (TensorProto.FLOAT, TensorProto.FLOAT16,
                                        TensorProto.DOUBLE, TensorProto.BFLOAT16)


def _restore_float32_resize_inputs(converted: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """Resize `scales` must be float32; the converter turns constant ones into float16."""
    graph = converted.graph
    originals = {t.name: t for t in original.graph.initializer}
    inits = {t.name: t for t in graph.initializer}
    consts = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    orig_consts = {n.output[0]: n for n in original.graph.node if n.op_type == "Constant"}
    for node in graph.node:
        if node.op_type != "Resize" or len(node.input) < 3 or not node.input[2]:
            continue
        name = node.input[2]
        if name in inits and inits[name].data_type == TensorProto.FLOAT16 and name in originals:
            inits[name].CopyFrom(originals[name])
        elif name in consts and name in orig_consts:
            consts[name].CopyFrom(orig_consts[name])


def _restore_float32_outputs(converted: onnx.ModelProto, original: onnx.ModelProto) -> None:
    """Graph outputs must stay float32; the converter turns those of blocked nodes float16."""
    graph = converted.graph
    was_float = {o.name for o in original.graph.output if o.type.tensor_type.elem_type
                 == TensorProto.FLOAT}
    producers = {o: n for n in graph.node for o in n.output}
    for out in graph.output:
        tt = out.type.tensor_type
        if out.name not in was_float or tt.elem_type != TensorProto.FLOAT16:
            continue
        tt.elem_type = TensorProto.FLOAT
        node = producers[out.name]
        if node.op_type == "Cast" and node.attribute[0].i == TensorProto.FLOAT16:
            node.attribute[0].i = TensorProto.FLOAT  # a float32 -> float16 cast: make it float32
            continue
        fp16_name = f"{out.name}_fp16"
        node.output[list(node.output).index(out.name)] = fp16_name
        graph.node.append(onnx.helper.make_node("Cast", [fp16_name], [out.name],
                                                name=f"{out.name}_cast_to_fp32",
                                                to=TensorProto.FLOAT))


def _remove_cast_round_trips(model: onnx.ModelProto) -> None:
    """Rewire float32 -> Cast16 -> Cast32 chains so big tensors never pass through float16.

    The converter removes such pairs only when the float16 tensor has a single consumer.
    """
    graph = model.graph
    types = _value_types(onnx.shape_inference.infer_shapes(model))
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    dropped: set[int] = set()
    for node in graph.node:
        if not _is_cast_to(node, TensorProto.FLOAT16) or \
                types.get(node.input[0]) != TensorProto.FLOAT:
            continue
        source, half = node.input[0], node.output[0]
        users = consumers.get(half, [])
        for user in users:
            if _is_cast_to(user, TensorProto.FLOAT) and user.output[0] not in outputs:
                for reader in consumers.get(user.output[0], []):
                    reader.input[:] = [source if i == user.output[0] else i for i in reader.input]
                dropped.add(id(user))
        if half not in outputs and all(id(u) in dropped for u in users):
            dropped.add(id(node))
    kept = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)


def _is_cast_to(node: onnx.NodeProto, to: int) -> bool:
    return node.op_type == "Cast" and any(a.name == "to" and a.i == to for a in node.attribute)


def _fix_value_info_types(model: onnx.ModelProto) -> None:
    """Drop stale value_info entries and re-infer, so declared types match the nodes."""
    io = {v.name for v in [*model.graph.input, *model.graph.output]}
    keep = [vi for vi in model.graph.value_info if vi.name in io]
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    inferred = onnx.shape_inference.infer_shapes(model)
    model.graph.value_info.extend(v for v in inferred.graph.value_info
                                  if v.name not in {k.name for k in keep})


def _check_converted(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:
    """Fail here, naming the converter, rather than later in a parity table."""
    import onnxruntime as ort

    try:
        onnx.checker.check_model(model)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(model.SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        session.run(None, feeds)
    except Exception as exc:
        raise ExportError(f"the float16 graph is invalid ({type(exc).__name__}: {exc})",
                          fix="export without FP16 (--no-fp16) and report the model") from exc
