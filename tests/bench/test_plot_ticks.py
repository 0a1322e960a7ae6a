"""The bench plot's log-axis tick labels, checked from matplotlib's text extents (no
screenshot): no two visible labels overlap, and every panel keeps at least two."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segdeploy.bench.plot import draw_plot, log_ticks, write_plot
from segdeploy.bench.results import BackendResult, BenchReport
from segdeploy.bench.timing import summarize

pytest.importorskip("matplotlib")

#: (low, high) latency ranges in ms; the first two made "600700800900" and "506070809100"
#: the least gap between two labels, in pixels at the plot's 120 dpi (a third of a character)
MIN_GAP_PX = 4
RANGES = [(600.0, 950.0), (50.0, 105.0), (0.26, 0.55), (8.0, 170.0), (10.1, 10.4),
          (0.02, 90_000.0), (3.0, 3.0001), (1.0, 1e9)]


def _report(ranges: list[tuple[float, float]]) -> BenchReport:
    report = BenchReport(environment={"cpu": "test cpu", "date": "2026-12-02"}, settings={})
    rng = np.random.default_rng(0)
    for i, (lo, hi) in enumerate(ranges):
        for name in ("onnxruntime fp32", "openvino fp32 (bf16)"):
            ms = np.concatenate([[lo, hi], rng.uniform(lo, hi, 30)])
            report.results.append(BackendResult(
                backend=name, shape=(1, 3, 8 + i, 8), stats=summarize(ms / 1e3, batch=1),
                samples_ms=[float(v) for v in ms]))
    return report


def _visible_label_boxes(fig) -> list[list]:
    fig.canvas.draw()  # the Agg canvas: text extents exactly as they are rasterised
    renderer = fig.canvas.get_renderer()
    out = []
    for ax in fig.axes:  # labels of ticks off the axis are never drawn: not counted
        x0, x1 = ax.get_window_extent(renderer).intervalx
        boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels(which="both")
                 if t.get_visible() and t.get_text()]
        out.append([b for b in boxes if x0 - 1 <= (b.x0 + b.x1) / 2 <= x1 + 1])
    return out


@pytest.mark.parametrize("lo_hi", RANGES, ids=lambda r: f"{r[0]:g}-{r[1]:g}ms")
def test_tick_labels_do_not_overlap(lo_hi: tuple[float, float]) -> None:
    import matplotlib.pyplot as plt

    fig = draw_plot(_report([lo_hi]))
    try:
        for boxes in _visible_label_boxes(fig):
            assert len(boxes) >= 2, "a log axis needs two labels to be read"
            for i, a in enumerate(boxes):  # "600700800900": touching reads as one number
                for b in boxes[i + 1:]:
                    assert not a.expanded(1.0, 1.0).padded(MIN_GAP_PX / 2).overlaps(b), (a, b)
    finally:
        plt.close(fig)


def test_many_panels_and_the_png_file(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = draw_plot(_report(RANGES))
    try:
        assert len(fig.axes) == len(RANGES)
        assert all(len(boxes) >= 2 for boxes in _visible_label_boxes(fig))
    finally:
        plt.close(fig)
    assert write_plot(_report(RANGES[:2]), tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_log_ticks_are_round_and_few() -> None:
    assert log_ticks(600, 950) == [600.0, 700.0, 800.0, 900.0]
    assert log_ticks(50, 105) == [50.0, 60.0, 70.0, 80.0, 90.0, 100.0]
    assert log_ticks(8, 170) == [10.0, 20.0, 30.0, 50.0, 100.0]
    assert 2 <= len(log_ticks(10.1, 10.4)) <= 7
    assert len(log_ticks(1e-3, 1e9)) <= 7
