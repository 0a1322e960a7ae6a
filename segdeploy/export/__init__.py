"""PyTorch -> ONNX (dynamic batch/height/width) -> mixed-precision FP16 ONNX, with checks.

    from segdeploy.export import run_export, ExportOptions
    result = run_export("fcn8s.pt", ExportOptions(opset=18, with_argmax=True))
    result.onnx_path, result.fp16_path, result.parity.passed

Modules: `sources` (checkpoint / TorchScript / .pt2 loading), `onnx_export` (torch -> ONNX),
`fp16` (mixed precision, no torch), `graph_checks` + `trt_onnx_ops` (structure, TensorRT
operator list), `parity` (ONNX Runtime vs PyTorch), `report`, `pipeline` (all of it).
This package imports no torch at import time; torch loads when an export runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from segdeploy.export.pipeline import ExportOptions, ExportResult, run_export

__all__ = ["ExportOptions", "ExportResult", "run_export"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from segdeploy.export import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'segdeploy.export' has no attribute {name!r}")
