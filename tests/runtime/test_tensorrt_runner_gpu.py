"""TensorRTRunner on a real GPU: an engine built here from the tiny ONNX must agree with
ONNX Runtime, through host arrays, zero-copy device inputs, CUDA graphs and threads."""

from __future__ import annotations

import hashlib
import json
import threading

import numpy as np
import pytest

from segdeploy.errors import InputError
from segdeploy.manifest import ExportInfo, PlanManifest
from segdeploy.runtime import DeviceView, OnnxRuntimeRunner, Segmenter, TensorRTRunner
from segdeploy.runtime import cuda_memory as cm
from segdeploy.runtime.plan_compat import manifest_path

pytestmark = [pytest.mark.gpu, pytest.mark.tensorrt]

PROFILE = {"min": [1, 3, 16, 16], "opt": [2, 3, 64, 64], "max": [4, 3, 128, 128]}


def build_plan(onnx_path, plan_path):
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(onnx_path.read_bytes()), [parser.get_error(i).desc()
                                                  for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    # TensorRT < 10 lets a profile serve one execution context at a time: one identical
    # profile per thread of test_zero_copy_cuda_graphs_and_threads (main + 2 workers)
    for _ in range(1 if major >= 10 else 3):
        profile = builder.create_optimization_profile()
        profile.set_shape("input", PROFILE["min"], PROFILE["opt"], PROFILE["max"])
        config.add_optimization_profile(profile)
    data = bytes(builder.build_serialized_network(network, config))
    plan_path.write_bytes(data)
    return trt.__version__, hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def plan(tiny_model, tmp_path_factory):
    import onnxruntime as ort

    onnx_path, _ = tiny_model()
    plan_path = tmp_path_factory.mktemp("plan") / "tiny.plan"
    version, sha = build_plan(onnx_path, plan_path)
    meta = ort.InferenceSession(str(onnx_path)).get_modelmeta().custom_metadata_map
    cm.use_device(0)
    manifest = PlanManifest(
        export=ExportInfo.from_metadata_props(dict(meta)), tensorrt_version=version,
        precision="fp32", profiles=[{"input": PROFILE}],
        io=[{"name": "input", "mode": "input"}, {"name": "logits", "mode": "output"}],
        onnx_sha256="", compute_capability=cm.compute_capability(0), plan_sha256=sha)
    manifest_path(plan_path).write_text(json.dumps(manifest.to_dict()))
    return onnx_path, plan_path


def test_engine_agrees_with_onnxruntime(plan):
    onnx_path, plan_path = plan
    x = np.random.default_rng(0).standard_normal((2, 3, 45, 67)).astype(np.float32)
    with OnnxRuntimeRunner(onnx_path, providers="cpu") as ref:
        expected = ref.infer({"input": x})["logits"]
    with TensorRTRunner(plan_path) as runner:
        spec = runner.input_specs()["input"]
        assert spec.profiles[0][2] == tuple(PROFILE["max"])
        out = runner.infer({"input": x})["logits"]
        again = runner.infer({"input": x[:1, :, :20, :30]})["logits"]  # new shape, same buffers
    np.testing.assert_allclose(out, expected, atol=1e-3)
    assert again.shape == (1, 3, 20, 30)


def test_zero_copy_cuda_graphs_and_threads(plan):
    _, plan_path = plan
    x = np.random.default_rng(1).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with TensorRTRunner(plan_path, cuda_graph=True) as runner:
        expected = runner.infer({"input": x})["logits"]
        replay = runner.infer({"input": x})["logits"]  # launched from the captured graph
        stream = cm.Stream()
        dev = cm.DeviceBuffer(x.nbytes)
        try:
            cm.copy_async(dev.ptr, x.ctypes.data, x.nbytes, "htod", stream)
            stream.synchronize()
            zero_copy = runner.infer({"input": DeviceView(dev.ptr, x.shape, x.dtype)})["logits"]
        finally:
            dev.free()
            stream.free()
        results = {}

        def work(i):
            results[i] = runner.infer({"input": x})["logits"]

        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    np.testing.assert_array_equal(replay, expected)
    np.testing.assert_array_equal(zero_copy, expected)
    assert len(results) == 2
    for out in results.values():
        np.testing.assert_allclose(out, expected, atol=1e-5)


def test_segmenter_on_tensorrt(plan):
    onnx_path, plan_path = plan
    image = np.random.default_rng(2).integers(0, 256, (150, 90, 3), dtype=np.uint8)
    with Segmenter.load(onnx_path) as ref, Segmenter.load(plan_path) as seg:
        assert seg.max_size == (128, 128)
        tiled = seg.predict_tiled(image)
        whole = ref.predict(image)
        small = seg.predict(image[:100, :90])
        assert (small == ref.predict(image[:100, :90])).mean() > 0.999
        with pytest.raises(InputError, match="predict_tiled"):
            seg.predict(image)
    assert tiled.shape == (150, 90)
    assert (tiled[16:-16, 16:-16] == whole[16:-16, 16:-16]).mean() > 0.99
