"""build_engine's own orchestration (settle precision, build, check, smoke parity, publish),
with TEST DOUBLES for the TensorRT module, the GPU query and the network build.

TensorRT cannot run here; these doubles stand only for what build_engine asks of them, and
the engine side of the smoke parity is a real ONNX Runtime session on the same file. This
checks our code path, never TensorRT itself (tests/engine/test_build_e2e.py does that on a GPU).
"""

from __future__ import annotations

import json
import types

from test_engine import tiny_segmentation_onnx

from segdeploy.engine import engine_build, network
from segdeploy.engine.engine_build import BuildRequest, build_engine
from segdeploy.runtime.onnxruntime_runner import OnnxRuntimeRunner


def fake_tensorrt_double(monkeypatch, onnx_path, calls: list) -> None:
    """TEST DOUBLE: TensorRT 10.3 on a compute-capability 8.7 GPU; build_plan returns the
    facts the ONNX has (its I/O and the requested profiles) and a placeholder plan."""
    monkeypatch.setattr(engine_build, "import_tensorrt",
                        lambda: types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(engine_build, "query_gpu",
                        lambda device=0: engine_build.GpuInfo("double GPU", "8.7", "12.6"))
    facts = engine_build.read_onnx_facts(onnx_path)

    def build_plan_double(trt, version, choice, settings, onnx_input):
        calls.append((choice, settings))
        return network.BuiltEngine(b"PLAN BYTES OF THE DOUBLE", facts.inputs + facts.outputs,
                                   list(settings.profiles), {"layers": 1})

    monkeypatch.setattr(network, "build_plan", build_plan_double)


def test_build_engine_publishes_the_built_plan_and_its_manifest(tmp_path, monkeypatch):
    onnx_path = tiny_segmentation_onnx(tmp_path / "m.onnx")
    calls: list = []
    fake_tensorrt_double(monkeypatch, onnx_path, calls)
    result = build_engine(BuildRequest(onnx_path, precision="fp32"),
                          runner_factory=lambda plan: OnnxRuntimeRunner(onnx_path,
                                                                        providers="cpu"))
    assert len(calls) == 1 and calls[0][1].precision == "fp32"
    assert result.plan_path.read_bytes() == b"PLAN BYTES OF THE DOUBLE"
    manifest = json.loads(result.manifest_path.read_text())
    assert manifest["precision"] == "fp32" and manifest["tensorrt_version"] == "10.3.0"
    assert manifest["parity"]["passed"] and manifest["compute_capability"] == "8.7"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.plan", "m.plan.json"]
