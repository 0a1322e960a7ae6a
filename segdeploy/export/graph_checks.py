"""Structural self-checks run on every exported ONNX file before it is given its final name.

onnx.checker (full_check, by path so large models need not fit one protobuf in memory),
strict shape inference, the I/O contract (`input`, `logits` [+ `mask`], dims named
batch/height/width) and TensorRT's operator list. Findings are data so the CLI and the
report show them in one table; `raise_for_errors` turns errors into an ExportError.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx

from segdeploy.errors import ExportError, first_line
from segdeploy.export.findings import Finding
from segdeploy.export.trt_onnx_ops import check_trt_support

DYNAMIC_DIMS = ("batch", "height", "width")


def check_onnx_file(path: str | os.PathLike[str], *, input_name: str = "input",
                    output_names: tuple[str, ...] = ("logits",), check_trt: bool = True,
                    static: bool = False) -> list[Finding]:
    """Run every structural check on the ONNX file at `path`."""
    path = Path(path)
    findings: list[Finding] = []
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError / others
        findings.append(Finding("error", "onnx.checker", first_line(exc, with_type=True),
                                fix="the exporter produced an invalid graph; report the model"))
        return findings
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                          data_prop=True)
    except Exception as exc:
        findings.append(Finding("error", "shape-inference", first_line(exc, with_type=True),
                                fix="the exported graph has inconsistent shapes or types"))
        return findings
    findings.extend(check_io_contract(model, input_name=input_name, output_names=output_names,
                                      static=static))
    if check_trt:
        findings.extend(check_trt_support(model))
    return findings


def check_io_contract(model: onnx.ModelProto, *, input_name: str = "input",
                      output_names: tuple[str, ...] = ("logits",),
                      static: bool = False) -> list[Finding]:
    """Names and dynamic axes every segdeploy runtime and TensorRT profile rely on
    (`static`: a --static-size graph, whose height and width are fixed on purpose)."""
    findings: list[Finding] = []
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [input_name]:
        findings.append(Finding("error", "io", f"graph inputs are {inputs}",
                                fix=f"a single input named {input_name!r} is expected"))
    if outputs != list(output_names):
        findings.append(Finding("error", "io", f"graph outputs are {outputs}",
                                fix=f"outputs {list(output_names)} are expected"))
    if inputs:
        dims = input_dims(model.graph.input[0])
        named = [d for d in dims if isinstance(d, str)]
        missing = [d for d in DYNAMIC_DIMS if d not in named
                   and not (static and d in ("height", "width"))]
        if missing:
            findings.append(Finding(
                "error", "dynamic-axes", f"input dims are {dims}: {', '.join(missing)} "
                "not dynamic", fix="export with dynamic batch/height/width (the default)"))
    return findings


def input_dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    """[dim_value or dim_param, ...] of a value info ('?' when neither is set)."""
    out: list[int | str] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_param"):
            out.append(d.dim_param)
        elif d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            out.append("?")
    return out


def raise_for_errors(findings: list[Finding], what: str) -> None:
    """Raise ExportError listing every error finding (warnings are left to the report)."""
    errors = [f for f in findings if f.level == "error"]
    if not errors:
        return
    detail = "; ".join(f"[{f.check}] {f.message}" for f in errors)
    fixes = "; ".join(dict.fromkeys(f.fix for f in errors if f.fix))
    raise ExportError(f"{what} failed its checks: {detail}", fix=fixes or None)

