"""benchmarks/runtime_overhead.py and two_models.py run end to end on tiny models (what
they report, not how fast: no timing is asserted)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import runtime_overhead  # noqa: E402
import two_models  # noqa: E402


def test_runtime_overhead_measures_plain_and_in_graph_models(tiny_model, capsys) -> None:
    args = argparse.Namespace(threads=1, repeats=2, size=[45, 67], json=None)
    plain, _ = tiny_model()
    in_graph, _ = tiny_model(uint8=True, layout="NHWC", argmax=True)
    rows = [runtime_overhead.measure_model(p, args) for p in (plain, in_graph)]
    assert [r["in_graph"] for r in rows] == [False, True]
    # what Segmenter feeds: 45x67 reflect-padded to the tiny model's stride (2)
    assert rows[0]["input"] == "1x3x46x68" and rows[1]["input"] == "1x46x68x3"
    for r in rows:
        assert r["bare_ms"] > 0 and r["predict_ms"] > 0 and r["np.argmax_cpu_ms"] >= 0
    runtime_overhead.report(args, rows)
    table = capsys.readouterr().out
    assert "| tiny | 3 | 1x3x46x68 |" in table and "| tiny (in-graph pre + argmax) |" in table
    assert "in graph |" in table


def test_two_models_reports_each_model_per_spinning_setting(tiny_model, capsys) -> None:
    a, _ = tiny_model()
    b, _ = tiny_model(in_channels=1)
    args = argparse.Namespace(threads=1, rounds=2, size=[33, 40], settle=0.0, json=None)
    rows = two_models.measure([a, b], args)
    assert [(r["model"], r["spinning"]) for r in rows] == [
        (a.name, True), (b.name, True), (a.name, False), (b.name, False)]
    for r in rows:
        assert r["alone_ms"] > 0 and r["alternating_ms"] > 0
        assert r["ratio"] > 0
    two_models.report(args, rows)
    assert "off (segdeploy default)" in capsys.readouterr().out
