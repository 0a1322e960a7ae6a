"""The bench table's marks are explained (a legend line of exactly the marks used) and the
untrusted rows are summed up in ONE warning line, the per-row reasons going to --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from segdeploy.bench.report import legend, print_report, warning_summary, write_json
from segdeploy.bench.results import BackendResult, BenchReport
from segdeploy.bench.timing import summarize, trust_warnings


def _row(name: str, shape: tuple[int, ...], samples_s: list[float],
         **info: object) -> BackendResult:
    stats = summarize(np.asarray(samples_s), batch=shape[0])
    return BackendResult(backend=name, shape=shape, stats=stats,
                         samples_ms=[v * 1e3 for v in samples_s], info=dict(info),
                         warnings=trust_warnings(stats))


def _report() -> BenchReport:
    """7 shapes x 2 backends = 14 rows, 5 of them untrusted (too short or too noisy)."""
    report = BenchReport(environment={"cpu": "test cpu"}, settings={})
    rng = np.random.default_rng(0)
    for i in range(7):
        shape = (1, 3, 16 + i, 16)
        report.results.append(_row("onnxruntime fp32", shape, [0.1] * 20, precision="fp32"))
        if i < 3:  # 3 rows with 4 samples only
            samples = [0.01] * 4
        elif i < 5:  # 2 rows with a high spread
            samples = list(rng.uniform(0.02, 0.2, 30))
        else:
            samples = [0.05] * 30
        report.results.append(_row("openvino fp16 (fp32)", shape, samples,
                                   precision="fp16", inference_precision="fp32"))
    report.fill_speedups()
    return report


def _printed(report: BenchReport, **kw: object) -> str:
    from rich.console import Console

    console = Console(record=True, width=300)
    print_report(report, console, **kw)  # type: ignore[arg-type]
    return console.export_text()


def test_one_summary_line_instead_of_one_per_row(tmp_path: Path) -> None:
    report = _report()
    assert len(report.results) == 14
    text = _printed(report, json_path=str(tmp_path / "b.json"))
    warning_lines = [ln for ln in text.splitlines() if ln.startswith("warning")]
    assert len(warning_lines) == 1, warning_lines
    line = warning_lines[0]
    assert "5 of 14 rows are marked !" in line
    assert "3 too few samples (raise --iterations or --duration)" in line
    assert "2 high spread" in line and "b.json" in line
    rows = [ln for ln in text.splitlines() if ln.startswith("│")]
    assert sum(" ! " in ln for ln in rows) == 5  # the marks themselves stay in the table
    data = json.loads(write_json(report, tmp_path / "b.json").read_text())
    assert sum(bool(r["warnings"]) for r in data["results"]) == 5  # the details


def test_legend_explains_every_mark_used() -> None:
    report = _report()
    text = _printed(report)
    lines = [ln for ln in text.splitlines() if ln.startswith("legend:")]
    assert len(lines) == 1
    assert "! = too few samples or high spread" in lines[0]
    assert "(fp32) after openvino fp16 = OpenVINO computed the fp16 graph in fp32" in lines[0]
    assert "CUDA graph" not in lines[0] and "provider" not in lines[0]  # marks not used
    assert "--json FILE" in (warning_summary(report) or "")


def test_clean_run_has_no_warning_and_no_bang_in_the_legend() -> None:
    report = BenchReport(environment={}, settings={})
    report.results.append(_row("onnxruntime fp32 (cuda)", (1, 3, 8, 8), [0.1] * 20,
                               providers=["CUDAExecutionProvider"]))
    report.results.append(_row("tensorrt fp16 graphs", (1, 3, 8, 8), [0.1] * 20))
    assert warning_summary(report) is None
    text = legend(report)
    assert "!" not in text and "execution provider" in text and "CUDA graph" in text
    assert "warning" not in _printed(report)
