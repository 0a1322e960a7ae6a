"""Real TensorRT builds: only where TensorRT and a GPU exist (conftest skips them elsewhere).

A tiny conv net (no torch) is built FP16 and FP32, verified by segdeploy's own checks
(inspector FP16 layers, I/O, profiles, parity with ONNX Runtime through TensorRTRunner),
then rebuilt through the engine cache; a graph with an operator TensorRT does not know must
be rejected with the parser's errors naming the node.
"""

from __future__ import annotations

import json

import pytest
from test_engine import tiny_segmentation_onnx

from segdeploy.engine.engine_build import BuildRequest, build_engine, import_tensorrt
from segdeploy.engine.network import _network_flags, parse_onnx
from segdeploy.engine.precision import TrtVersion, decide_precision
from segdeploy.engine.profiles import parse_profile
from segdeploy.errors import BuildError
from segdeploy.manifest import PlanManifest

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu, pytest.mark.slow]
PROFILE = parse_profile("min=1x3x16x16,opt=1x3x40x56,max=2x3x64x64")


def _request(onnx, out, **kw):
    return BuildRequest(onnx, output=out, profiles=[PROFILE], show_progress=False,
                        optimization_level=0, **kw)


def test_fp16_build_is_verified_and_published(tmp_path):
    onnx = tiny_segmentation_onnx(tmp_path / "tiny.onnx")
    plan_path = tmp_path / "tiny.plan"
    result = build_engine(_request(onnx, plan_path, timing_cache=tmp_path / "t.cache"))
    manifest = PlanManifest.from_dict(json.loads(result.manifest_path.read_text()))
    assert result.plan_path == plan_path and plan_path.stat().st_size > 0
    assert manifest.precision == "fp16" and manifest.build_flags["layers"]["by_precision"]["fp16"]
    assert manifest.parity["passed"] and manifest.parity["min_agreement"] >= 0.995
    assert len(manifest.parity["points"]) == 3
    assert manifest.profiles == [{"input": PROFILE.to_dict()}]
    assert [t["name"] for t in manifest.io] == ["input", "logits"]
    trt = import_tensorrt()
    major = TrtVersion.parse(trt.__version__).major
    source = manifest.build_flags["precision_choice"]["onnx_source"]
    assert source == ("convert-to-fp16" if major >= 10 else "given")
    assert manifest.export.precision == "fp16" and manifest.tensorrt_version == trt.__version__
    assert (tmp_path / "t.cache").stat().st_size > 0
    # a plain plan: TensorRT deserialises the file as it is
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    assert runtime.deserialize_cuda_engine(plan_path.read_bytes()) is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_fp32_build_and_engine_cache(tmp_path):
    onnx = tiny_segmentation_onnx(tmp_path / "m.onnx")
    cache = tmp_path / "cache"
    first = build_engine(_request(onnx, tmp_path / "a.plan", precision="fp32", cache_dir=cache))
    again = build_engine(_request(onnx, tmp_path / "b.plan", precision="fp32", cache_dir=cache))
    assert not first.cache_hit and again.cache_hit
    assert (tmp_path / "a.plan").read_bytes() == (tmp_path / "b.plan").read_bytes()
    changed = build_engine(_request(onnx, tmp_path / "c.plan", precision="fp32",
                                    cache_dir=cache, workspace_bytes=1 << 28))
    assert not changed.cache_hit
    assert first.manifest.parity["passed"] and first.manifest.precision == "fp32"


def test_parser_errors_name_the_node(tmp_path):
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["input"], ["logits"], name="/custom/NoSuchOp",
                            domain="com.example")
    dims = ["batch", 3, "height", "width"]
    graph = helper.make_graph(
        [node], "bad", [helper.make_tensor_value_info("input", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    trt = import_tensorrt()
    version = TrtVersion.parse(trt.__version__)
    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(
        _network_flags(trt, decide_precision(version.major, "fp32", "fp32")))
    parser = trt.OnnxParser(network, logger)
    with pytest.raises(BuildError, match="parser rejected the model") as err:
        parse_onnx(trt, version, parser, model.SerializeToString())
    if version.major >= 10:  # 8.x parser errors carry the node's index only
        assert "/custom/NoSuchOp" in str(err.value)
