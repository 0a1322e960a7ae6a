"""backend="auto": an INT8 file runs where it is fastest and right.

ONNX Runtime opens .onnx files by default. A U8S8 QDQ file (uint8 activations, int8 weights;
runtime/qdq_types.py) about to run on the CPU is tried on OpenVINO first, which ran such
files up to 2.4x faster than ONNX Runtime INT8 (FCN-8s; 1.03x on a width-0.25 fcn_resnet18:
BENCHMARKS.md), but mis-ran some graphs (int8_crosscheck.py): its first inference on the
probe images is compared with ONNX Runtime's on the same file, and OpenVINO is kept only
when the masks agree (the check's MIN_AGREEMENT). Otherwise the file runs on ONNX Runtime,
with one notice saying why. Every other file (float, S8S8 / U8U8, plans, GPU providers, no
OpenVINO installed) gets the backend it gets without "auto".
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from segdeploy.errors import SegdeployError
from segdeploy.runtime.backends import backend_for

AUTO = "auto"


class BackendNotice(UserWarning):
    """backend="auto" ran an INT8 file on ONNX Runtime because OpenVINO could not run it
    right (the CLI prints it as a note)."""


def is_auto(backend: str | None) -> bool:
    return backend is not None and backend.lower() == AUTO


def openvino_candidate(path: Path, providers: Any) -> bool:
    """Whether "auto" tries OpenVINO for this file: an ONNX file whose default backend is
    ONNX Runtime, on the CPU (no providers named, none but the CPU one available, or
    providers="cpu"), a QDQ graph of a flavour OpenVINO runs right, and OpenVINO installed."""
    if not path.is_file() or backend_for(path).name != "onnxruntime" or not _on_cpu(providers):
        return False
    from segdeploy.runtime.qdq_types import qdq_types

    types = qdq_types(path)
    if types is None or not types.activations or not types.openvino_runs_right:
        return False
    try:  # imported here anyway when it is chosen
        importlib.import_module("openvino")
    except ImportError:
        return False
    return True


def _on_cpu(providers: Any) -> bool:
    """Whether ONNX Runtime would run on the CPU alone with these providers (None: CUDA
    when this onnxruntime has it)."""
    import onnxruntime as ort

    from segdeploy.runtime.onnxruntime_runner import resolve_providers

    return resolve_providers(providers, ort.get_available_providers()) == [
        "CPUExecutionProvider"]


def load_auto(cls: Any, path: Path, *, providers: Any = None, precision: str | None = None,
              load: dict[str, Any], runner_options: dict[str, Any]) -> Any:
    """cls.load(path, backend="auto", ...) for cls = Segmenter (passed in: this module is
    imported by segmenter.py): OpenVINO for an INT8 U8S8 file on the CPU when its first run
    agrees with ONNX Runtime, else the default backend. `load`: Segmenter.load's own
    keywords (threads, memory_budget, pad_to_stride, notify); `runner_options`: keywords
    for the runner (session_options=, spinning= ...), which name ONNX Runtime's."""
    if not runner_options and openvino_candidate(path, providers):
        try:  # the INT8 check against ONNX Runtime runs at load (crosscheck=True)
            return cls.load(path, backend="openvino", precision=precision, crosscheck=True,
                            **load)
        except SegdeployError as exc:  # it runs the file wrongly, or cannot compile it
            reason = exc.what
        seg = cls.load(path, providers=providers, **load)
        seg._tell(f"this INT8 file runs on {backend_for(path).label} because OpenVINO, "
                  f"usually faster for it, did not: {reason}", BackendNotice)
        return seg
    return cls.load(path, providers=providers, precision=precision, **load,
                    **runner_options)
