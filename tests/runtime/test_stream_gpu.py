"""Segmenter.stream on a real TensorRT engine: double-buffered device inputs on a copy
stream of their own give the same masks as predict() and as ONNX Runtime's stream."""

from __future__ import annotations

import numpy as np
import pytest
from test_tensorrt_runner_gpu import plan  # noqa: F401 - the module-scoped engine fixture

from segdeploy.runtime import Segmenter

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]


def test_stream_on_tensorrt_matches_predict(plan):  # noqa: F811
    onnx_path, plan_path = plan
    rng = np.random.default_rng(5)
    frames = [rng.integers(0, 256, (40 + 9 * i, 100 - 7 * i, 3), dtype=np.uint8)
              for i in range(8)]
    with Segmenter.load(plan_path) as seg:
        expected = [seg.predict(im) for im in frames]
        staged = list(seg.stream(frames, prefetch=3))
        unstaged = list(seg.stream(frames, device_inputs=False))
    with Segmenter.load(onnx_path) as ref:
        reference = list(ref.stream(frames))
    for want, a, b, r in zip(expected, staged, unstaged, reference, strict=True):
        np.testing.assert_array_equal(a, want)
        np.testing.assert_array_equal(b, want)
        assert (a == r).mean() > 0.999
