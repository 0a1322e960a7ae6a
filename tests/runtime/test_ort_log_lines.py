"""A session that fails to load or run prints our one error line, not ONNX Runtime's own
C++ log line (`[E:onnxruntime:...]`) before it: checked on the real stderr of CLI runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]


def _graph(path: Path, *, weight_channels: int, reshape_to: int | None) -> Path:
    """A 1x1 conv on a 3-channel input; with `reshape_to`, a Reshape to a fixed side (runs at
    that size only: the mismatched graph someone exported at one size)."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "h", "w"])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 2, "h", "w"])
    w = np.random.default_rng(0).random((2, weight_channels, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")]
    nodes = [helper.make_node("Conv", ["input", "w"], ["c" if reshape_to else "logits"])]
    if reshape_to:
        inits.append(numpy_helper.from_array(np.array([-1, 2, reshape_to, reshape_to]),
                                             "shape"))
        nodes.append(helper.make_node("Reshape", ["c", "shape"], ["logits"]))
    graph = helper.make_graph(nodes, "g", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _stderr_lines(*args: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "400"}
    proc = subprocess.run([sys.executable, "-m", "segdeploy", *args], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stderr
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize("weight_channels, reshape_to", [(3, 64), (4, None)])
def test_a_failing_run_prints_one_line(tmp_path, weight_channels, reshape_to):
    model = _graph(tmp_path / "m.onnx", weight_channels=weight_channels, reshape_to=reshape_to)
    lines = _stderr_lines("bench", "-e", str(model), "--shape", "1x3x32x32",
                          "-b", "onnxruntime", "-n", "2", "--warmup", "0")
    assert not any("onnxruntime:" in ln and "[E:" in ln for ln in lines), lines
    assert len(lines) == 1 and lines[0].startswith("error: ONNX Runtime"), lines


def test_card_on_a_graph_that_runs_at_one_size_only_prints_one_line(tmp_path):
    model = _graph(tmp_path / "m.onnx", weight_channels=3, reshape_to=64)
    lines = _stderr_lines("card", str(model), "--classes", "a,b", "--mean", "0.5",
                          "--std", "0.5", "-o", str(tmp_path / "c.onnx"))
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "[E:onnxruntime" not in lines[0]
