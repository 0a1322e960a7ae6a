"""An INT8 (QDQ) graph's first run on a backend that can mis-run it, checked against ONNX
Runtime on the same file before any mask is returned.

OpenVINO ran the brain U-Net's QDQ file wrongly (53-57% argmax agreement with ONNX Runtime
on a Xeon with AMX; BENCHMARKS.md) while FCN-8s was fine: which patterns it mis-runs depends
on the graph and the CPU, so a backend flagged `crosscheck_int8` in the backend table has
each INT8 file checked at load, on smooth synthetic images at the card's typical size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from segdeploy.errors import ArtifactError

#: a right run agrees with ONNX Runtime on almost every pixel; the wrong ones seen: 7-57%
MIN_AGREEMENT = 0.95


def probe_images(height: int, width: int, channels: int, n: int = 2,
                 seed: int = 0) -> list[np.ndarray]:
    """Smooth uint8 images (upsampled coarse noise): blobs and edges like real content, so
    that a right INT8 run is not judged on noise-level ties."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = rng.integers(0, 256, (max(height // 16, 2), max(width // 16, 2), channels))
        rows = np.linspace(0, coarse.shape[0] - 1, height).round().astype(int)
        cols = np.linspace(0, coarse.shape[1] - 1, width).round().astype(int)
        out.append(coarse[rows][:, cols].astype(np.uint8))
    return out


def crosscheck(seg: Any, reference: Callable[[], Any], backend: str) -> float:
    """Argmax agreement of `seg` with ONNX Runtime (`reference()` opens it) on the probe
    images; an ArtifactError when below MIN_AGREEMENT, naming the backend that is right."""
    h, w = seg.card.typical_size()
    images = probe_images(int(h), int(w), seg.channels)
    with reference() as ref:
        expected = ref.predict(images)
    got = seg.predict(images)
    agreement = float(np.mean([np.mean(a == b) for a, b in zip(expected, got, strict=True)]))
    if agreement < MIN_AGREEMENT:
        raise ArtifactError(
            f"{backend} runs this INT8 graph wrongly here: its masks agree with ONNX Runtime "
            f"on {100 * agreement:.1f}% of the pixels of a check image (needs "
            f">= {100 * MIN_AGREEMENT:.0f}%)",
            expected=f"an INT8 graph that {backend} computes as ONNX Runtime does",
            fix="run this file with --backend onnxruntime (backend='onnxruntime'), or run the "
                "FP32 file with OpenVINO")
    return agreement
