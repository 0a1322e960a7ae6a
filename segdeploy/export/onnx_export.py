"""torch -> FP32 ONNX with dynamic batch, height and width (named dims batch/height/width).

Opset 18 (default) goes through torch's dynamo exporter with `dynamic_shapes`; opset 17
(TensorRT 8.5/8.6) through the legacy TorchScript exporter with `dynamic_axes`, as
docs/ARCHITECTURE.md records. The model is wrapped first (`DeployWrapper`) so optional in-graph
preprocessing (uint8 NHWC -> normalised float NCHW) and argmax (`mask`, uint8 where the
classes fit, else int32; `mask_dtype`) are part of
the exported graph and of the PyTorch reference the parity check compares with.

The example input has batch 2 and odd, non-square H and W: an example of batch 1 or a
"nice" size lets torch.export specialise shapes (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from segdeploy.errors import ExportError
from segdeploy.manifest import ModelCard

SUPPORTED_OPSETS = (17, 18)
#: upper bound given to torch.export for the symbolic dims (TensorRT profiles narrow it)
MAX_BATCH, MAX_SIDE = 256, 8192


class DeployWrapper(nn.Module):
    """The model plus what the deployed graph adds: preprocessing and argmax.

    With `preprocess`, the input is uint8 N x H x W x C (what cameras and image decoders
    give) and is normalised in the graph as (x / 255 - mean) / std. With `argmax`, a second
    output `mask` holds class ids as `mask_dtype`: uint8 (4x less to copy back than int32)
    or int32 (TensorRT 8.x rejects uint8 outputs).
    """

    def __init__(self, model: nn.Module | Any, *, mean: Sequence[float], std: Sequence[float],
                 preprocess: bool = False, argmax: bool = False,
                 threshold: float | None = None, mask_dtype: str = "int32"):
        super().__init__()
        self.model = model
        self.preprocess = preprocess
        self.argmax = argmax
        self.threshold = threshold
        self.mask_dtype = mask_dtype  #: "uint8" | "int32" (MASK_DTYPES)
        m = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
        # x * scale + shift == (x / 255 - mean) / std, two ops TensorRT fuses
        self.register_buffer("scale", 1.0 / (255.0 * s), persistent=False)
        self.register_buffer("shift", -m / s, persistent=False)

    def train(self, mode: bool = True) -> DeployWrapper:
        """eval() must also work on a `.pt2` program's module, which refuses train()/eval():
        it keeps the mode it was exported in (export programs in eval mode)."""
        self.training = mode
        try:
            self.model.train(mode)
        except NotImplementedError:
            pass
        return self

    def forward(self, x: torch.Tensor) -> Any:
        if self.preprocess:
            scale, shift = self.get_buffer("scale"), self.get_buffer("shift")
            x = x.permute(0, 3, 1, 2).to(torch.float32) * scale + shift
        logits = self.model(x)
        if isinstance(logits, dict):  # torchvision-style {"out": ...}
            logits = logits["out"]
        elif isinstance(logits, list | tuple):
            logits = logits[0]
        if self.argmax and logits.shape[1] == 1:  # a binary head: class 1 above the threshold
            return logits, (logits[:, 0] > (self.threshold or 0.0)).to(
                getattr(torch, self.mask_dtype))
        if self.argmax:
            return logits, torch.argmax(logits, dim=1).to(getattr(torch, self.mask_dtype))
        return logits


def output_names(argmax: bool) -> list[str]:
    return ["logits", "mask"] if argmax else ["logits"]


#: dtypes the in-graph `mask` output can have
MASK_DTYPES = ("uint8", "int32")


def mask_dtype_for(requested: str | None, num_classes: int) -> str:
    """The `mask` output's dtype: uint8 where the class ids fit (<= 256 classes), else int32;
    an explicit uint8 for more classes is refused."""
    if requested is not None and requested not in MASK_DTYPES:
        raise ExportError(f"argmax dtype {requested!r}", expected=" or ".join(MASK_DTYPES))
    fits = num_classes <= 256
    if requested == "uint8" and not fits:
        raise ExportError(f"the model has {num_classes} classes, more than uint8 class ids hold",
                          expected="at most 256 classes for --argmax-dtype uint8",
                          fix="use --argmax-dtype int32")
    return requested or ("uint8" if fits else "int32")


def static_size(card: ModelCard) -> tuple[int, int] | None:
    """The fixed H x W of a `--static-size` export, else None."""
    return card.fixed_size()


def example_size(card: ModelCard) -> tuple[int, int]:
    """Odd, non-square H, W at least `min_size`; odd multiples of `size_multiple` when
    required (a multiple of 2m would let torch.export assume more divisibility)."""
    fixed = static_size(card)
    if fixed is not None:
        return fixed
    m = max(1, card.size_multiple)
    base = max(card.min_size, 64)
    if m > 1:
        k = -(-base // m) | 1
        return k * m, (k + 2) * m
    h = base | 1
    return h, h + 26


def example_input(card: ModelCard, *, preprocess: bool, batch: int = 2) -> torch.Tensor:
    h, w = example_size(card)
    gen = torch.Generator().manual_seed(0)
    if preprocess:
        return torch.randint(0, 256, (batch, h, w, card.in_channels), generator=gen,
                             dtype=torch.uint8)
    return torch.randn(batch, card.in_channels, h, w, generator=gen)


def export_onnx(wrapper: nn.Module, card: ModelCard, *, opset: int = 18,
                kind: str = "checkpoint") -> onnx.ModelProto:
    """Export `wrapper` (a DeployWrapper in eval mode) to an FP32 ModelProto.

    `kind` is the source kind ("checkpoint", "torchscript", "exported-program"): TorchScript
    goes through the legacy exporter at any opset (the dynamo exporter cannot read it).
    """
    if opset not in SUPPORTED_OPSETS:
        raise ExportError(f"opset {opset} is not supported",
                          expected=f"one of {SUPPORTED_OPSETS} (17: TensorRT 8.5/8.6, 18: newer)")
    preprocess = bool(getattr(wrapper, "preprocess", False))
    names = output_names(bool(getattr(wrapper, "argmax", False)))
    x = example_input(card, preprocess=preprocess)
    spatial = (1, 2) if preprocess else (2, 3)
    fixed = static_size(card) is not None
    scripted = kind == "torchscript" and is_scripted(getattr(wrapper, "model", wrapper))
    legacy = (opset <= 17 and kind != "exported-program") or kind == "torchscript"
    with torch.no_grad(), _quiet():
        try:
            if kind == "torchscript":
                # the legacy exporter cannot call a loaded ScriptModule from Python code;
                # tracing the wrapper first records that call as part of one TorchScript graph
                wrapper = torch.jit.trace(wrapper, (x,), check_trace=False)
            if legacy:
                model = _export_legacy(wrapper, x, names, () if fixed else spatial, opset,
                                       same_size=card.output_mode == "same")
            else:
                model = _export_dynamo(wrapper, x, names, spatial, opset, card)
        except ExportError:
            raise
        except Exception as exc:
            raise explain_export_failure(exc, card.arch, kind=kind, static=fixed,
                                         scripted=scripted) from exc
    name_dynamic_dims(model, spatial, same_size=card.output_mode == "same")
    fix_class_dim(model, card.output_channels)
    _strip_node_metadata(model)
    got = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), None)
    if got != opset:
        raise ExportError(f"the exporter produced opset {got} instead of {opset}",
                          fix="use --opset 18, or re-export the source from a torch.nn.Module")
    return model


def _export_dynamo(wrapper: nn.Module, x: torch.Tensor, names: list[str],
                   spatial: tuple[int, int], opset: int, card: ModelCard) -> onnx.ModelProto:
    dim = torch.export.Dim
    dims: dict[int, Any] = {0: dim("batch", min=1, max=MAX_BATCH)}
    m = max(1, card.size_multiple)
    lo = max(2, card.min_size)
    if static_size(card) is None and m == 1:
        dims[spatial[0]] = dim("height", min=lo, max=MAX_SIDE)
        dims[spatial[1]] = dim("width", min=lo, max=MAX_SIDE)
    elif static_size(card) is None:  # H = m * k: torch.export's derived dims
        dims[spatial[0]] = m * dim("height_k", min=max(1, -(-lo // m)), max=MAX_SIDE // m)
        dims[spatial[1]] = m * dim("width_k", min=max(1, -(-lo // m)), max=MAX_SIDE // m)
    program = torch.onnx.export(wrapper, (x,), dynamo=True, opset_version=opset,
                                input_names=["input"], output_names=names,
                                dynamic_shapes=(dims,), optimize=True, verbose=False,
                                external_data=False)
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise ExportError("the dynamo exporter returned no program")
    return program.model_proto


def _export_legacy(wrapper: nn.Module, x: torch.Tensor, names: list[str],
                   spatial: tuple[int, int] | tuple[()], opset: int, *,
                   same_size: bool) -> onnx.ModelProto:
    axes = {0: "batch", **({spatial[0]: "height", spatial[1]: "width"} if spatial else {})}
    oh, ow = ("height", "width") if same_size else ("out_height", "out_width")
    dynamic_axes = {"input": axes, "logits": {0: "batch", **({2: oh, 3: ow} if spatial else {})}}
    if len(names) > 1:
        dynamic_axes["mask"] = {0: "batch", **({1: oh, 2: ow} if spatial else {})}
    buf = io.BytesIO()
    with _native_output_silenced():
        torch.onnx.export(wrapper, (x,), buf,  # type: ignore[arg-type]  # BytesIO works
                          dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=names, dynamic_axes=dynamic_axes,
                          do_constant_folding=True, training=torch.onnx.TrainingMode.EVAL)
    return onnx.load_from_string(buf.getvalue())


@contextlib.contextmanager
def _native_output_silenced():
    """The legacy exporter dumps its whole TorchScript graph through C++ (stdout) on failure;
    the ExportError we raise says what matters, so file descriptors 1 and 2 are parked."""
    streams = [s for s in (sys.__stdout__, sys.__stderr__) if s is not None]
    try:
        fds = [s.fileno() for s in streams]
        for s in streams:
            s.flush()
    except (AttributeError, OSError, ValueError):  # no real stdout/stderr (embedded use)
        yield
        return
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
            try:
                yield
            finally:
                for fd, old in zip(fds, saved, strict=True):
                    os.dup2(old, fd)
    finally:
        for old in saved:
            os.close(old)


def name_dynamic_dims(model: onnx.ModelProto, spatial: tuple[int, int], *,
                      same_size: bool = True) -> None:
    """Call the input's symbolic dims batch/height/width everywhere they appear.

    Exporting a `.pt2` keeps torch's symbol names (s0, s77...), and the dynamo exporter
    names output dims by the expressions it derived (`Min(height + 31, ...) - 31` for an FCN
    crop); runtimes and TensorRT profiles read the names, so outputs of a "same"-size model
    are named batch/height/width (the parity check verifies the sizes match) and those of a
    "valid" model out_height/out_width.
    """
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    rename: dict[str, str] = {}
    for axis, new in ((0, "batch"), (spatial[0], "height"), (spatial[1], "width")):
        if axis < len(dims) and dims[axis].HasField("dim_param"):
            rename[dims[axis].dim_param] = new
    if not rename:
        return
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_param") and d.dim_param in rename:
                d.dim_param = rename[d.dim_param]
    spatial_out = ("height", "width") if same_size else ("out_height", "out_width")
    for out in graph.output:
        odims = out.type.tensor_type.shape.dim
        first = 2 if len(odims) == 4 else 1  # logits N x K x H x W, mask N x H x W
        for i, d in enumerate(odims):
            if i == 0 and not d.HasField("dim_value"):
                d.dim_param = "batch"
            elif i >= first and not d.HasField("dim_value"):
                d.dim_param = spatial_out[i - first]


def fix_class_dim(model: onnx.ModelProto, num_classes: int) -> None:
    """The logits' class axis is a number, never a symbol (tracing a torchvision model
    leaves one): runtimes and TensorRT read the class count from the graph."""
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        if out.name == "logits" and len(dims) == 4 and not dims[1].HasField("dim_value"):
            dims[1].dim_value = int(num_classes)


def _strip_node_metadata(model: onnx.ModelProto) -> None:
    """The dynamo exporter tags every node with FX provenance; it is noise in a deployed file."""
    for node in model.graph.node:
        del node.metadata_props[:]
    for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        del vi.metadata_props[:]
    for init in model.graph.initializer:
        del init.metadata_props[:]


_OP_PATTERNS = (r"aten::[A-Za-z0-9_.]+", r"aten\.[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)?",
                r"torch\.ops\.[A-Za-z0-9_.]+", r"prim::[A-Za-z0-9_]+")


SCRIPTED_FIX = ("this .ts was made with torch.jit.script, whose Python control flow is "
                "beyond the ONNX exporter: save a traced one, torch.jit.save(torch.jit.trace("
                "model.eval(), torch.randn(2, 3, 224, 224), strict=False), 'model.ts'), or a "
                ".pt2 with dynamic dims, torch.export.save(torch.export.export(model.eval(), "
                "(torch.randn(2, 3, 224, 224),), dynamic_shapes=({0: Dim.AUTO, 2: Dim.AUTO, "
                "3: Dim.AUTO},)), 'model.pt2')")


def is_scripted(model: Any) -> bool:
    """A TorchScript module made by torch.jit.script (its graph keeps Python control flow,
    prim::If / prim::Loop), as opposed to a trace, which records one straight path."""
    try:
        graph = model.inlined_graph
    except Exception:
        return False
    return any(n.kind() in ("prim::If", "prim::Loop") for n in graph.nodes())


def explain_export_failure(exc: BaseException, arch: str, *, kind: str = "checkpoint",
                           static: bool = False, scripted: bool = False) -> ExportError:
    """Turn a torch.export / ONNX exporter failure into one clear ExportError.

    The exporters raise long multi-part messages; the user needs the operator (when one is
    named), the reason, and what to change.
    """
    text = f"{exc}"
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        text += f"\n{cause}"
    ops = []
    for pattern in _OP_PATTERNS:
        ops += [m for m in re.findall(pattern, text) if m not in ops]
    summary = _summary_line(text) or type(exc).__name__
    op_part = f" at operator {ops[0]}" if ops else ""
    if "Constraints violated" in text or "guard" in text.lower() or "specializ" in text.lower():
        fix = ("make the forward pass shape-agnostic: resize to a tensor's size "
               "(F.interpolate(x, size=ref.shape[-2:])) instead of padding to a multiple and "
               "cropping, and avoid Python branches on H/W")
    elif ops:
        fix = (f"replace {ops[0]} in the model with operators ONNX supports, or try the other "
               "exporter (--opset 17 / 18)")
    else:
        fix = "check that the model runs in eval mode on an N x C x H x W float tensor"
    if "adaptive_avg_pool" in text and static:
        fix = ("choose a --static-size whose feature map (size / output stride) is a multiple "
               "of every pooling bin, e.g. 6 x stride for bins 1, 2, 3, 6 (PSPNet with "
               "encoder_depth 3: multiples of 48; UPerNet: multiples of 192)")
    elif "adaptive_avg_pool" in text:
        fix = ("adaptive pooling to fixed bins cannot be dynamic: export a fixed-size graph "
               "with --static-size HxW")
    elif not static:
        fix += ("; a model that works at one size only (adaptive pooling to fixed bins) "
                "exports with --static-size HxW")
    if kind == "torchscript" and scripted:
        fix = f"{SCRIPTED_FIX}; {fix}"
    shapes = "a fixed size" if static else "dynamic shapes"
    return ExportError(f"cannot export {arch} to ONNX with {shapes}{op_part}: {summary}",
                       fix=fix)


def _summary_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if line.startswith("## Exception summary") and i + 1 < len(lines):
            return _clean(lines[i + 1])
    for line in lines:
        if re.search(r"(Error|Exception|violated|not supported|Unsupported)", line):
            return _clean(line)
    return _clean(lines[0]) if lines else ""


def _clean(line: str) -> str:
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    return line[:400]


@contextlib.contextmanager
def _quiet():
    """Silence exporter chatter (deprecation warnings, torchvision-not-installed notes)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo",
                                              "torch.fx.experimental.symbolic_shapes",
                                              "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def as_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
