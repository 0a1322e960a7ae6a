"""The bench orchestration with scripted test doubles of our own backends (no real model):
speed-ups, skipped backends, phase rows, reports, plot dependency."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from segdeploy.bench.backends import BenchBackend, Shape
from segdeploy.bench.harness import bench_backend_names, parse_shape, run_bench
from segdeploy.bench.report import markdown_table, print_report, write_json, write_plot
from segdeploy.errors import InputError, MissingDependencyError, UsageError


class ScriptedBackendForOrchestrationTest(BenchBackend):
    """Returns fixed latency samples (seconds) instead of running anything."""

    def __init__(self, name: str, samples: list[float], *, fail_open: Exception | None = None,
                 phases: dict[str, list[float]] | None = None) -> None:
        self.name, self.samples, self.fail_open, self.phases = name, samples, fail_open, phases
        self.opened = self.closed = 0

    def open(self) -> None:
        self.opened += 1
        if self.fail_open is not None:
            raise self.fail_open

    def close(self) -> None:
        self.closed += 1

    def prepare(self, shape: Shape) -> Callable[[], object]:
        return lambda: None

    def measure(self, shape, *, warmup, iterations, duration, on_step=None, min_iterations=1):
        if on_step is not None:
            on_step(len(self.samples), sum(self.samples))
        scale = shape[0]  # a batch of 2 takes twice as long
        phases = {k: np.asarray(v) for k, v in (self.phases or {}).items()}
        return np.asarray(self.samples) * scale, phases


def _report(**kw):
    slow = ScriptedBackendForOrchestrationTest("slow", [0.06] * 20)
    fast = ScriptedBackendForOrchestrationTest(
        "fast", [0.015] * 20, phases={"h2d": [0.001] * 20, "compute": [0.013] * 20,
                                      "d2h": [0.001] * 20})
    missing = ScriptedBackendForOrchestrationTest(
        "gone", [0.01], fail_open=MissingDependencyError("tensorrt", extra="tensorrt"))
    report = run_bench([slow, fast, missing], [(1, 3, 8, 8), (2, 3, 8, 8)], warmup=0,
                       iterations=20, progress=False, **kw)
    return report, (slow, fast, missing)


def test_run_bench_speedups_skips_and_phases() -> None:
    report, (slow, fast, missing) = _report()
    assert [(r.backend, r.shape) for r in report.results] == [
        ("slow", (1, 3, 8, 8)), ("slow", (2, 3, 8, 8)), ("fast", (1, 3, 8, 8)),
        ("fast", (2, 3, 8, 8))]
    by = {(r.backend, r.shape[0]): r for r in report.results}
    assert by["fast", 1].speedup == pytest.approx(4.0) and by["slow", 1].speedup == 1.0
    assert by["fast", 2].stats.throughput == pytest.approx(2 / 0.03)
    assert set(by["fast", 1].phases) == {"h2d", "compute", "d2h"}
    assert by["fast", 1].phases["compute"].mean_ms == pytest.approx(13.0)
    assert "gone" in report.skipped and "segdeploy[tensorrt]" in report.skipped["gone"]
    assert slow.opened == slow.closed == 1 and missing.closed == 1
    assert by["slow", 1].warnings == []  # 20 steady iterations over 1.2 s: trusted
    assert any("s measured" in w for w in by["fast", 1].warnings)


def test_run_bench_strict_propagates_missing_dependency() -> None:
    gone = ScriptedBackendForOrchestrationTest(
        "gone", [0.01], fail_open=MissingDependencyError("tensorrt", extra="tensorrt"))
    with pytest.raises(MissingDependencyError):
        run_bench([gone], [(1, 3, 8, 8)], iterations=1, progress=False, strict=True)
    assert gone.closed == 1


class FailingBackendForOrchestrationTest(ScriptedBackendForOrchestrationTest):
    def measure(self, shape, **kw):
        if shape[0] == 2:
            raise InputError("batch 2 is not supported")
        return super().measure(shape, **kw)


def test_run_bench_skip_failures_records_the_shape() -> None:
    b = FailingBackendForOrchestrationTest("picky", [0.01] * 3)
    with pytest.raises(InputError):
        run_bench([b], [(1, 3, 8, 8), (2, 3, 8, 8)], iterations=3, progress=False)
    report = run_bench([b], [(1, 3, 8, 8), (2, 3, 8, 8)], iterations=3, progress=False,
                       skip_failures=True)
    assert [r.shape for r in report.results] == [(1, 3, 8, 8)]
    assert "batch 2" in report.skipped["picky 2x3x8x8"] and b.closed == 2


def test_reports_render(tmp_path: Path) -> None:
    from rich.console import Console

    report, _ = _report()
    console = Console(record=True, width=200)
    print_report(report, console)
    text = console.export_text()
    assert "slow" in text and "GPU compute" in text and "skipped" in text and "4.00x" in text
    md = markdown_table(report)
    assert md.count("\n") == 1 + len(report.results) and "| fast | 1x3x8x8 |" in md
    data = json.loads(write_json(report, tmp_path / "r.json").read_text())
    assert data["results"][2]["phases"]["compute"]["iterations"] == 20
    assert len(data["results"][0]["samples_ms"]) == 20


def test_plot_needs_matplotlib(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    report, _ = _report()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(MissingDependencyError, match=r"segdeploy\[plot\]"):
        write_plot(report, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_plot_writes_svg(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report, _ = _report()
    out = write_plot(report, tmp_path / "p.svg")
    assert out.read_text().lstrip().startswith("<?xml") and "slow" in out.read_text()


def test_parse_shape() -> None:
    assert parse_shape("2x3x64x80", 1) == (2, 3, 64, 80)
    assert parse_shape("64x80", 1) == (1, 1, 64, 80)
    for bad in ("64", "0x3x4x4", "axb"):
        with pytest.raises(UsageError):
            parse_shape(bad, 3)


def test_bench_backends_are_the_runtime_table_plus_baseline_and_end_to_end() -> None:
    from segdeploy.runtime.backends import backend_names

    assert bench_backend_names() == ("pytorch", *backend_names(), "segmenter")


def test_environment_reports_torch_only_when_loaded() -> None:
    code = ("import json, sys; from segdeploy.bench.environment import collect_environment; "
            "env = collect_environment(2); assert 'torch' not in sys.modules; "
            "print(json.dumps(env))")
    env = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                    text=True, check=True).stdout)
    assert "torch" not in env["versions"] and env["versions"]["numpy"]
    assert env["threads"]["requested"] == 2 and env["cores"]["usable"] >= 1
