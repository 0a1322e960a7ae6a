"""`segdeploy card`: give an ONNX that another tool wrote (a plain torch.onnx.export file, an
NVIDIA ModelOpt output) the metadata segdeploy's runtime reads: classes, mean/std, size rules.

Nothing is taken on faith: the graph must have one 4-D float input and a 4-D output whose
class axis matches the names given; the model is run once with ONNX Runtime at a size it
accepts to learn whether its output has the input's size. The precision label comes from
the graph (QDQ -> int8, float16 compute -> fp16). The file is rewritten atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import UsageError, first_line
from segdeploy.export.binary_head import ends_in_sigmoid, head_classes


@dataclass
class CardRequest:
    model: Path
    classes: list[str]
    mean: list[float]
    std: list[float]
    in_channels: int | None = None
    size_multiple: int | None = None
    arch: str | None = None
    output: Path | None = None
    threshold: float | None = None


def write_card(req: CardRequest) -> tuple[Path, Any]:
    """Check `req` against the graph, write the card; (output path, ExportInfo). The note
    of a binary head (its threshold) is `info.card.config["binary_note"]`."""
    from segdeploy.atomic import check_output_path
    from segdeploy.manifest import ExportInfo, ModelCard
    from segdeploy.onnx_metadata import load_onnx, save_with_metadata
    from segdeploy.onnx_precision import graph_precision

    out = req.output or req.model
    if out.suffix != ".onnx":
        raise UsageError(f"output {out} does not end in .onnx", expected="-o NAME.onnx")
    check_output_path(out)
    model = load_onnx(req.model, purpose="to write a card into an ONNX file")
    inp, logits = _io(model, req.model)
    c = _channels(inp, req)
    mean, std = _per_channel(req.mean, c, "--mean"), _per_channel(req.std, c, "--std")
    k = _dim(logits, 1)
    if k is not None and k != 1 and k != len(req.classes):
        raise UsageError(f"--classes names {len(req.classes)} classes but {req.model} outputs "
                         f"{k} channels ({logits.name})", expected=f"{k} comma-separated names")
    fh, fw = _dim(inp, 2), _dim(inp, 3)
    static: tuple[int, int] | None = (fh, fw) if fh is not None and fw is not None else None
    m = req.size_multiple or 1
    mode, k = _output_mode(req.model, inp.name, c, static, m)
    classes, threshold, note = head_classes(k, list(req.classes), req.threshold,
                                            sigmoid=ends_in_sigmoid(model, logits.name),
                                            source=str(req.model))
    assert classes is not None
    if k != 1 and k != len(classes):
        raise UsageError(f"--classes names {len(classes)} classes but {req.model} outputs "
                         f"{k} channels", expected=f"{k} comma-separated names")
    unknown = ["output_stride", "min_size", "train_size"]
    config: dict[str, Any] = {"source": "segdeploy card", "unknown": unknown}
    if note:
        config["binary_note"] = note
    side = -(-256 // m) * m
    card = ModelCard(arch=req.arch or req.model.stem.split(".")[0],
                     num_classes=len(classes), classes=classes, in_channels=c,
                     config=config, mean=mean, std=std, output_stride=max(m, 1),
                     size_multiple=m, min_size=min(static) if static else max(m, 32),
                     output_mode=mode, train_size=list(static) if static else [side, side],
                     channel_mode="rgb" if c == 3 else "grey",
                     static_size=list(static) if static else None, threshold=threshold)
    opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)
    info = ExportInfo(card=card, input_name=inp.name, output_names=[logits.name],
                      precision=graph_precision(req.model), opset=int(opset))
    _fix_class_dim(model, logits.name, 1 if threshold is not None else len(classes))
    save_with_metadata(model, info.to_metadata_props(), out)
    return out, info


def _fix_class_dim(model: Any, name: str, k: int) -> None:
    """The class axis of output `name` becomes the number k (runtimes read it)."""
    dims = next(o for o in model.graph.output if o.name == name).type.tensor_type.shape.dim
    if len(dims) == 4 and not dims[1].HasField("dim_value"):
        dims[1].dim_value = k


def _io(model: Any, path: Path) -> tuple[Any, Any]:
    init = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in init]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        raise UsageError(f"{path} has inputs {[i.name for i in inputs]}",
                         expected="one N x C x H x W image input")
    if inputs[0].type.tensor_type.elem_type != 1:  # TensorProto.FLOAT
        raise UsageError(f"{path}'s input {inputs[0].name!r} is not float32",
                         expected="a float32 N x C x H x W input (normalised outside the graph)")
    outs = [o for o in model.graph.output if len(o.type.tensor_type.shape.dim) == 4]
    if not outs:
        raise UsageError(f"{path} has no 4-D output", expected="logits N x K x H x W")
    return inputs[0], outs[0]


def _dim(value_info: Any, axis: int) -> int | None:
    d = value_info.type.tensor_type.shape.dim[axis]
    return int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None


def _channels(inp: Any, req: CardRequest) -> int:
    c = _dim(inp, 1)
    if c is not None and req.in_channels is not None and c != req.in_channels:
        raise UsageError(f"--in-channels {req.in_channels} but {req.model} takes {c} channels",
                         fix=f"pass --in-channels {c} or drop it")
    return c or req.in_channels or 3


def _per_channel(values: list[float], c: int, flag: str) -> list[float]:
    if len(values) == 1:
        return [float(values[0])] * c
    if len(values) != c:
        raise UsageError(f"{flag} has {len(values)} values for {c} input channels",
                         expected="one value per channel (or one for all)")
    return [float(v) for v in values]


def _output_mode(path: Path, name: str, c: int, static: tuple[int, int] | None,
                 m: int) -> tuple[str, int]:
    """Run once at a size the graph takes: ("same" when the output has the input's size,
    else "valid"; the output's channels)."""
    from segdeploy.runtime.onnxruntime_runner import OnnxRuntimeRunner

    h, w = static or (m * (-(-67 // m) | 1), m * ((-(-67 // m) | 1) + 2))
    try:
        with OnnxRuntimeRunner(path, providers="cpu") as runner:
            n = runner.input_specs()[name].shape[0] or 1
            y = next(iter(runner.infer({name: np.zeros((n, c, h, w), np.float32)}).values()))
    except Exception as exc:
        raise UsageError(f"ONNX Runtime cannot run {path} at {c}x{h}x{w}: "
                         f"{first_line(exc, limit=200)}",
                         fix="pass --size-multiple N if the model needs H, W divisible by N"
                         ) from None
    if y.ndim != 4:
        raise UsageError(f"{path} returns shape {tuple(y.shape)} at {c}x{h}x{w}",
                         expected="N x K x H x W logits")
    if tuple(y.shape[2:]) == (h, w):
        return "same", int(y.shape[1])
    if y.shape[2] < h and y.shape[3] < w:
        return "valid", int(y.shape[1])
    raise UsageError(f"{path} returns {y.shape[2]}x{y.shape[3]} logits for a {h}x{w} input",
                     expected="logits of the input's size",
                     fix="pass the --size-multiple the model needs")
