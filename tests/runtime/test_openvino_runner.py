"""OpenVINO runner: the Runner contract against ONNX Runtime at odd sizes; the missing extra."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from segdeploy.errors import MissingDependencyError, UsageError

pytest.importorskip("torch", reason="making test ONNX files needs torch")


def test_missing_openvino_names_the_extra(tiny_model, monkeypatch) -> None:
    from segdeploy.runtime import Segmenter

    path, _ = tiny_model()
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    with pytest.raises(MissingDependencyError, match=r"segdeploy\[openvino\]"):
        Segmenter.load(path, backend="openvino")


ov = pytest.importorskip("openvino")


@pytest.mark.parametrize("shape", [(1, 3, 37, 53), (2, 3, 61, 203), (1, 3, 8, 9)])
def test_openvino_matches_onnxruntime_at_odd_sizes(tiny_model, shape) -> None:
    from segdeploy.runtime import OnnxRuntimeRunner
    from segdeploy.runtime.openvino_runner import OpenVINORunner

    path, _ = tiny_model()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    with OpenVINORunner(path, precision="fp32", threads=1) as r, \
            OnnxRuntimeRunner(path, providers="cpu", threads=1) as ref:
        spec = r.input_specs()["input"]
        assert spec.dtype == np.float32 and spec.shape[2:] == (None, None)  # dynamic H, W
        assert r.inference_precision == "fp32"
        got, want = r.infer({"input": x})["logits"], ref.infer({"input": x})["logits"]
        assert got.shape == want.shape == (shape[0], 3, *shape[2:])
        np.testing.assert_allclose(got, want, atol=1e-4)
        assert r.metadata() == ref.metadata()
        with pytest.raises(Exception, match="dtype"):  # the shared checks run first
            r.infer({"input": x.astype(np.float64)})


def test_segmenter_on_openvino_records_its_precision(tiny_model) -> None:
    from segdeploy.runtime import Segmenter

    path, _ = tiny_model(uint8=True, layout="NHWC", argmax=True)
    image = np.random.default_rng(1).integers(0, 256, (45, 71, 3), dtype=np.uint8)
    with Segmenter.load(path, backend="openvino", precision="auto") as seg, \
            Segmenter.load(path) as ref:
        assert seg.runner.inference_precision in ("fp32", "bf16")
        agree = (seg.predict(image) == ref.predict(image)).mean()
        assert agree >= (0.999 if seg.runner.inference_precision == "fp32" else 0.98)
    with pytest.raises(UsageError, match="OpenVINO only"):
        Segmenter.load(path, precision="bf16")
    with pytest.raises(UsageError, match="precision"):
        Segmenter.load(path, backend="openvino", precision="int4")


def test_onnxruntime_spinning_and_session_options(tiny_model) -> None:
    import onnxruntime as ort

    from segdeploy.runtime import OnnxRuntimeRunner
    from segdeploy.runtime.onnxruntime_runner import DEFAULT_SPINNING, session_options

    opts = session_options(ort, None, threads=1, spinning=False)
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    mine = session_options(ort, {"session.intra_op.allow_spinning": "1"}, threads=None,
                           spinning=False)
    assert mine.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    path, _ = tiny_model()
    with OnnxRuntimeRunner(path, providers="cpu") as r:
        assert r.spinning is DEFAULT_SPINNING
    with pytest.raises(UsageError, match="session_options"):
        OnnxRuntimeRunner(path, session_options=42).activate()
