"""Fixtures of the runtime tests: tiny ONNX models (see tiny_models.py) and images."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="making test ONNX files needs torch")
pytest.importorskip("onnx", reason="making test ONNX files needs onnx")

from tiny_models import TinySegNet, torch, write_onnx  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., tuple[Path, Any]]:
    """make(**options) -> (onnx path, torch net); cached per option set for the session."""
    cache: dict[tuple, tuple[Path, Any]] = {}
    folder = tmp_path_factory.mktemp("tiny_onnx")

    def make(**options: Any) -> tuple[Path, Any]:
        key = tuple(sorted(options.items()))
        if key not in cache:
            torch.manual_seed(0)
            net = TinySegNet(options.get("in_channels", 3), options.get("num_classes", 3),
                             valid=options.get("valid", False)).eval()
            path = folder / f"tiny{len(cache)}.onnx"
            cache[key] = (write_onnx(path, net, **options), net)
        return cache[key]

    return make


@pytest.fixture
def rgb_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (45, 67, 3), dtype=np.uint8)
