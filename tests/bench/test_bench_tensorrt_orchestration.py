"""`segdeploy bench` on a TensorRT plan, run on the test doubles of the TensorRT and
cuda-python APIs (tests/runtime/fake_trt_orchestration.py). It checks OUR orchestration of
the TensorRT bench backend (rows with CUDA graphs on and off, h2d / compute / d2h phases from
TensorRTRunner.infer_phases, the JSON fields), not TensorRT nor any real timing: the doubles'
event times are fixed costs per queued operation. The real plan: test_bench_tensorrt.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime"))
from fake_trt_orchestration import (  # noqa: E402 - lives with the runtime tests
    COST_MS,
    FakeCudartForOrchestrationTest,
    FakeTrtEngineForOrchestrationTest,
    fake_tensorrt_module,
    write_fake_plan,
)

from segdeploy.cli.main import main  # noqa: E402
from segdeploy.runtime import cuda_memory as cm  # noqa: E402


def test_bench_tensorrt_orchestration_rows_and_phases(monkeypatch, tmp_path: Path,
                                                      capsys) -> None:
    cudart = FakeCudartForOrchestrationTest()
    engine = FakeTrtEngineForOrchestrationTest(cudart)
    monkeypatch.setattr(cm, "cudart", lambda: cudart)
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt_module(engine))
    plan = write_fake_plan(tmp_path)
    out_json = tmp_path / "trt.json"
    main(["bench", "--engine", str(plan), "-b", "tensorrt", "-s", "1x3x16x16", "-s", "2x3x8x12",
          "-n", "4", "--warmup", "1", "--json", str(out_json), "--no-progress"])
    results = json.loads(out_json.read_text())["results"]
    rows = sorted((r["backend"], tuple(r["shape"])) for r in results)
    assert rows == [("tensorrt fp32", (1, 3, 16, 16)), ("tensorrt fp32", (2, 3, 8, 12)),
                    ("tensorrt fp32 graphs", (1, 3, 16, 16)),
                    ("tensorrt fp32 graphs", (2, 3, 8, 12))]
    for r in results:
        graphs = r["backend"].endswith("graphs")
        assert r["info"]["cuda_graph"] is graphs and r["info"]["precision"] == "fp32"
        assert r["info"]["tensorrt_version"] == "10.3.0.26" and "phases" not in r["info"]
        assert r["iterations"] == 4 and len(r["samples_ms"]) == 4
        assert set(r["phases"]) == {"h2d", "compute", "d2h"}
        for phase in r["phases"].values():
            assert phase["iterations"] == 4 and phase["min_ms"] >= 0
            assert phase["batch"] == r["shape"][0]
        # one copy each way; the end-to-end loop already ran the shape's plain enqueue (and
        # captured its graph), so every timed call replays with graphs and enqueues without
        assert r["phases"]["h2d"]["mean_ms"] == pytest.approx(COST_MS["cudaMemcpyHostToDevice"])
        assert r["phases"]["d2h"]["mean_ms"] == pytest.approx(COST_MS["cudaMemcpyDeviceToHost"])
        compute = COST_MS["graph_launch" if graphs else "enqueue"]
        assert r["phases"]["compute"]["max_ms"] == pytest.approx(compute)
    assert "GPU compute" in capsys.readouterr().out
    assert cudart.events == {} and cudart.live == {}  # the backends closed their runners
