"""Markers for hardware: tests marked `gpu` or `tensorrt` skip with a reason where absent."""

from __future__ import annotations

import importlib.util
import shutil

import pytest


def _has_gpu() -> tuple[bool, str]:
    try:
        import torch

        if torch.cuda.is_available():
            return True, ""
    except ImportError:
        pass
    if shutil.which("nvidia-smi") is None:
        return False, "no NVIDIA GPU on this machine (nvidia-smi not found)"
    return False, "no CUDA device visible to torch"


def _has_tensorrt() -> tuple[bool, str]:
    if importlib.util.find_spec("tensorrt") is None:
        return False, "TensorRT is not installed (pip install 'segdeploy[tensorrt]')"
    try:
        import tensorrt  # noqa: F401
    except Exception as exc:  # the bindings exist but the libraries do not load
        return False, f"TensorRT does not import here: {exc}"
    return True, ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_ok, gpu_why = _has_gpu()
    trt_ok, trt_why = _has_tensorrt()
    for item in items:
        if "gpu" in item.keywords and not gpu_ok:
            item.add_marker(pytest.mark.skip(reason=gpu_why))
        if "tensorrt" in item.keywords and not trt_ok:
            item.add_marker(pytest.mark.skip(reason=trt_why))
