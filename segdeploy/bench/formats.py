"""The deployment formats `segdeploy benchmark` compares, and why this machine cannot run one.

A format is a runtime backend (runtime/backends.py) at one precision, reading one artifact
of the checkpoint: the FP32 / FP16 ONNX of `segdeploy export`, the INT8 QDQ ONNX of
`segdeploy quantize`, or a TensorRT plan of `segdeploy build`. Whether a format can run is
read from the machine (installed libraries, CPU extensions, a CUDA GPU), never assumed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from segdeploy.errors import UsageError

#: the artifacts formats read, by the suffix they get after the checkpoint's stem
ARTIFACTS = {"fp32": ".onnx", "fp16": ".fp16.onnx", "int8": ".int8.onnx",
             "int8-trt": ".int8-trt.onnx", "plan-fp16": ".fp16.plan", "plan-int8": ".int8.plan"}


@dataclass(frozen=True)
class Format:
    """One row of the benchmark: `backend` running `artifact` at `precision`."""

    key: str
    backend: str
    precision: str
    artifact: str  #: a key of ARTIFACTS
    #: Segmenter.load options (OpenVINO's inference precision hint)
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def label(self) -> str:
        """The backend's name for people ("ONNX Runtime"), from the backend table."""
        from segdeploy.runtime.backends import get_backend

        try:
            return get_backend(self.backend).label or self.backend
        except UsageError:
            return self.backend


FORMATS: tuple[Format, ...] = (
    Format("onnxruntime-fp32", "onnxruntime", "fp32", "fp32"),
    Format("onnxruntime-fp16", "onnxruntime", "fp16", "fp16"),
    Format("onnxruntime-int8", "onnxruntime", "int8", "int8"),
    Format("openvino-fp32", "openvino", "fp32", "fp32", {"precision": "fp32"}),
    Format("openvino-bf16", "openvino", "bf16", "fp32", {"precision": "bf16"}),
    Format("openvino-int8", "openvino", "int8", "int8"),
    Format("tensorrt-fp16", "tensorrt", "fp16", "plan-fp16"),
    Format("tensorrt-int8", "tensorrt", "int8", "plan-int8"),
)
FORMAT_KEYS = tuple(f.key for f in FORMATS)


def select_formats(names: Sequence[str] | None) -> list[Format]:
    """The formats asked for (comma lists or repeated names; None or empty: all), in table
    order; an unknown name is a UsageError listing the known ones."""
    wanted = [n.strip() for name in (names or ()) for n in name.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in FORMAT_KEYS]
    if unknown:
        raise UsageError(f"unknown format {unknown[0]!r}", expected=", ".join(FORMAT_KEYS))
    return [f for f in FORMATS if not wanted or f.key in wanted]


def tensorrt_missing() -> str | None:
    """Why TensorRT cannot build or run plans here (not installed, no CUDA GPU), or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed (pip install 'segdeploy[tensorrt]')"
    try:
        from cuda.bindings import runtime as cudart

        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or count == 0:
            return "no CUDA GPU found"
    except Exception as exc:  # noqa: BLE001 - cuda-python missing, no driver
        from segdeploy.errors import first_line

        return f"CUDA is not usable here ({first_line(exc, limit=120)})"
    return None


def why_unavailable(fmt: Format, extensions: Sequence[str] | None = None) -> str | None:
    """Why this machine cannot run `fmt` (a sentence), or None when it can."""
    if fmt.backend == "tensorrt":
        return tensorrt_missing()
    if fmt.backend == "openvino":
        if importlib.util.find_spec("openvino") is None:
            return "OpenVINO is not installed (pip install 'segdeploy[openvino]')"
        if fmt.options.get("precision") == "bf16":
            from segdeploy.bench.openvino import default_precisions

            if "bf16" not in default_precisions(list(extensions) if extensions is not None
                                                else None):
                return "this CPU computes no bf16 (needs AMX-BF16 or AVX-512 BF16)"
    elif fmt.backend == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        return "ONNX Runtime is not installed (pip install segdeploy)"
    return None
