"""TensorRT bench and verify on a real FP16 plan of the brain U-Net: only where TensorRT and
a GPU exist (conftest skips them elsewhere)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segdeploy.cli.main import main

pytestmark = [pytest.mark.tensorrt, pytest.mark.gpu, pytest.mark.slow]


@pytest.fixture(scope="module")
def brain_plan(brain_onnx, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from segdeploy.engine.engine_build import BuildRequest, build_engine
    from segdeploy.engine.profiles import parse_profile

    plan = tmp_path_factory.mktemp("brain_plan") / "unet_brain.plan"
    profile = parse_profile("min=1x1x64x64,opt=1x1x197x233,max=2x1x320x320")
    build_engine(BuildRequest(brain_onnx[1], output=plan, profiles=[profile],
                              show_progress=False, optimization_level=0))
    return plan


def test_bench_tensorrt_phases_with_and_without_graphs(brain_plan: Path, tmp_path: Path,
                                                       capsys) -> None:
    out_json = tmp_path / "trt.json"
    main(["bench", "--engine", str(brain_plan), "-s", "1x1x197x233", "-n", "20",
          "--warmup", "3", "--json", str(out_json), "--no-progress"])
    results = json.loads(out_json.read_text())["results"]
    trt = [r for r in results if r["backend"].startswith("tensorrt")]
    assert {r["info"]["cuda_graph"] for r in trt} == {True, False}
    for r in trt:
        assert set(r["phases"]) == {"h2d", "compute", "d2h"}
        for phase in r["phases"].values():
            assert phase["iterations"] == 20 and phase["min_ms"] > 0
    assert any(r["backend"].startswith("segmenter tensorrt") for r in results)
    assert json.loads(out_json.read_text())["environment"]["gpus"]
    assert "GPU compute" in capsys.readouterr().out


def test_verify_tensorrt_plan(brain_checkpoint, brain_plan: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "parity.json"
    main(["verify", str(brain_checkpoint), "--engine", str(brain_plan), "--sizes",
          "97x131,197x233", "--max-images", "4", "--json", str(out_json), "--no-progress"])
    data = json.loads(out_json.read_text())
    assert data["passed"] and data["backend"] == "tensorrt" and data["precision"] == "fp16"
