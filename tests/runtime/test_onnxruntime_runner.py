"""OnnxRuntimeRunner and the shared Runner checks, against a bare InferenceSession."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort
import pytest

from segdeploy.errors import ArtifactError, InputError, MissingDependencyError, UsageError
from segdeploy.runtime import OnnxRuntimeRunner, TensorSpec
from segdeploy.runtime.onnxruntime_runner import numpy_dtype, resolve_providers
from segdeploy.runtime.runner import check_feeds, check_finite, check_shape


@pytest.fixture
def x():
    return np.random.default_rng(0).standard_normal((2, 3, 21, 34)).astype(np.float32)


def test_construction_is_cheap_and_activation_opens_the_session(tiny_model):
    path, _ = tiny_model()
    runner = OnnxRuntimeRunner(path, threads=1)
    assert runner.session is None and not runner.is_active
    with pytest.raises(UsageError, match="not active"):
        runner.input_specs()
    with runner:
        assert runner.session is not None
        specs = runner.input_specs()
        assert specs["input"].shape == (None, 3, None, None)
        assert specs["input"].dtype == np.float32
        assert list(runner.output_specs()) == ["logits"]
        assert "segdeploy" in runner.metadata()
    assert runner.session is None and not runner.is_active
    runner.close()  # idempotent


@pytest.mark.parametrize("io_binding", [False, True])
def test_infer_matches_bare_session(tiny_model, x, io_binding):
    path, _ = tiny_model()
    bare = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = bare.run(None, {"input": x})[0]
    with OnnxRuntimeRunner(path, providers="cpu", threads=1, io_binding=io_binding) as runner:
        assert runner.providers == ["CPUExecutionProvider"]
        out = runner.infer({"input": x})
    assert list(out) == ["logits"]
    np.testing.assert_array_equal(out["logits"], expected)


def test_dlpack_host_tensors_are_accepted(tiny_model, x):
    import torch

    path, _ = tiny_model()
    with OnnxRuntimeRunner(path, threads=1) as runner:
        a = runner.infer({"input": x})["logits"]
        b = runner.infer({"input": torch.from_numpy(x)})["logits"]
    np.testing.assert_array_equal(a, b)


def test_threads_share_one_runner(tiny_model, x):
    path, _ = tiny_model()
    results: dict[int, np.ndarray] = {}
    with OnnxRuntimeRunner(path, threads=1) as runner:
        expected = runner.infer({"input": x})["logits"]

        def work(i: int) -> None:
            results[i] = runner.infer({"input": x})["logits"]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == 3
    for out in results.values():
        np.testing.assert_array_equal(out, expected)


def test_feed_errors(tiny_model, x):
    path, _ = tiny_model()
    with OnnxRuntimeRunner(path) as runner:
        with pytest.raises(InputError, match="missing"):
            runner.infer({"image": x})
        with pytest.raises(InputError, match="dtype float64"):
            runner.infer({"input": x.astype(np.float64)})
        with pytest.raises(InputError, match="rank"):
            runner.infer({"input": x[0]})
        with pytest.raises(InputError, match="axis 1"):
            runner.infer({"input": x[:, :2]})
        with pytest.raises(InputError, match="infinite"):
            bad = x.copy()
            bad[1, 2, 3, 4] = np.inf
            runner.infer({"input": bad})
        with pytest.raises(InputError, match="dict"):
            runner.infer([x])
        with pytest.raises(UsageError, match="unknown output"):
            runner.infer({"input": x}, output_names=["probs"])
        # unchecked feeds the graph cannot run: an InputError, not an onnxruntime exception
        with pytest.raises(InputError, match="ONNX Runtime failed"):
            runner.infer({"input": x[:, :2]}, check=False)


def test_provider_resolution():
    assert resolve_providers(None, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers(None, avail) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert resolve_providers("trt,cuda", avail) == ["TensorrtExecutionProvider",
                                                    "CUDAExecutionProvider",
                                                    "CPUExecutionProvider"]
    assert resolve_providers([("cuda", {"device_id": 1})], avail)[0] == (
        "CUDAExecutionProvider", {"device_id": 1})
    with pytest.raises(MissingDependencyError, match=r"segdeploy\[gpu\]"):
        resolve_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(UsageError, match="provider"):
        resolve_providers("tpu", avail)


def test_runner_rejects_bad_paths_and_options(tmp_path, tiny_model):
    path, _ = tiny_model()
    with pytest.raises(ArtifactError, match="does not exist"):
        OnnxRuntimeRunner(tmp_path / "none.onnx")
    with pytest.raises(UsageError, match="threads"):
        OnnxRuntimeRunner(path, threads=0)
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(path.read_bytes()[:100])
    runner = OnnxRuntimeRunner(broken)
    with pytest.raises(ArtifactError, match="could not load"):
        runner.activate()
    assert not runner.is_active


def test_spec_checks_without_a_backend():
    spec = TensorSpec("input", np.dtype(np.float32), (None, 3, None, None),
                      profiles=(((1, 3, 32, 32), (1, 3, 64, 64), (4, 3, 128, 128)),))
    check_shape(spec, (2, 3, 100, 32))
    with pytest.raises(InputError, match="outside the engine's profiles") as info:
        check_shape(spec, (1, 3, 129, 64))
    assert "1x3x32x32 to 4x3x128x128" in str(info.value) and "tile" in str(info.value)
    with pytest.raises(InputError, match="empty"):
        check_shape(TensorSpec("x", np.dtype(np.float32), (None,)), (0,))
    check_finite("x", np.full(4, 3e38, np.float32))  # the sum overflows, the values are fine
    with pytest.raises(InputError, match="NaN"):
        check_finite("x", np.array([1.0, np.nan], np.float32))
    check_finite("x", np.zeros(3, np.uint8))
    with pytest.raises(InputError, match="is a str"):
        check_feeds({"input": spec}, {"input": "pixels"})
    assert numpy_dtype("tensor(float16)") == np.float16
    with pytest.raises(ArtifactError, match="not supported"):
        numpy_dtype("tensor(string)")
