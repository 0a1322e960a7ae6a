"""Edits of exported ONNX files that tests use to make an engine disagree with PyTorch."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def noisy_last_conv(src: Path, dst: Path, strength: float) -> Path:
    """The same graph and metadata, the last convolution's weights plus seeded noise of
    `strength` times their mean magnitude (0.5: pixels near class borders change, as after a
    lossy conversion; 3: the masks are scrambled)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][-1]
    init = next(i for i in model.graph.initializer if i.name == conv.input[1])
    w = numpy_helper.to_array(init)
    noise = np.random.default_rng(0).standard_normal(w.shape).astype(w.dtype)
    init.CopyFrom(numpy_helper.from_array(w + noise * np.abs(w).mean() * strength, init.name))
    onnx.save(model, str(dst))
    return dst
