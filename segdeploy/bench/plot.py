"""The latency plot: one panel per shape, a box per backend, on a log axis people can read.

matplotlib's default log axis labels every minor tick once a range spans less than a decade,
and its labels then run into each other ("600700800900"). Here the ticks are chosen from a
short list of round numbers, labelled plainly, and any label that would still touch its
neighbour is hidden after layout, so no two visible labels ever overlap.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from segdeploy.atomic import atomic_path
from segdeploy.bench.results import BenchReport, shape_text
from segdeploy.errors import UsageError, require

#: mantissas tried in turn, coarse to fine; the finest one giving at most MAX_TICKS wins
_MANTISSAS = ((1.0,), (1.0, 3.0), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0),
              (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))
MAX_TICKS = 7
#: the figure's and the file's resolution: labels are measured at the size they are saved
DPI = 120
#: the least room between two tick labels (pixels at DPI): half a character
LABEL_GAP_PX = 5


def log_ticks(lo: float, hi: float, max_ticks: int = MAX_TICKS) -> list[float]:
    """Round tick values inside [lo, hi] for a log axis: at least two, at most max_ticks.

    A range too narrow for any round mantissa (10.1 to 10.4 ms) gets evenly spaced plain
    values; one wider than max_ticks decades gets every n-th power of ten.
    """
    if not (0 < lo < hi):
        return [lo] if lo > 0 else []
    decades = range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
    best: list[float] = []
    for subs in _MANTISSAS:
        ticks = [float(f"{m * 10.0 ** d:.12g}") for d in decades for m in subs]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) > max_ticks:
            break
        best = ticks
    if len(best) >= 2:
        return best
    if not best and len(decades) > max_ticks:  # many decades: every n-th power of ten
        step = math.ceil(len(decades) / max_ticks)
        return [10.0 ** d for d in decades if d % step == 0 and lo <= 10.0 ** d <= hi]
    from matplotlib.ticker import MaxNLocator

    linear = [float(t) for t in MaxNLocator(nbins=3).tick_values(lo, hi) if lo <= t <= hi]
    return linear if len(linear) >= 2 else best or linear


def check_plot_path(path: str | Path) -> str:
    """The image format a plot path asks for; an unknown suffix is a UsageError."""
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf", "jpg", "jpeg"):
        raise UsageError(f"plot path {path} has suffix {Path(path).suffix!r}",
                         expected="a .png, .svg, .pdf or .jpg file")
    return fmt


def _readable_log_axis(ax: Any) -> None:
    """Round, plainly labelled major ticks; minor ticks only as unlabelled grid marks."""
    from matplotlib import ticker

    ax.set_xscale("log")
    lo, hi = sorted(ax.get_xlim())
    ax.xaxis.set_major_locator(ticker.FixedLocator(log_ticks(lo, hi)))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.xaxis.set_minor_locator(ticker.LogLocator(subs="auto"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlim(lo, hi)


def hide_overlapping_labels(fig: Any) -> None:
    """After layout: hide any x tick label that would touch the last one kept (left to right)."""
    get_renderer = getattr(fig.canvas, "get_renderer", None)
    if get_renderer is None:  # a canvas that cannot measure text (not Agg-based): leave it
        return
    renderer = get_renderer()
    for ax in fig.axes:
        kept = None
        labels = [t for t in ax.get_xticklabels(which="both") if t.get_visible()
                  and t.get_text()]
        for label in sorted(labels, key=lambda t: t.get_window_extent(renderer).x0):
            box = label.get_window_extent(renderer)
            if kept is not None and box.x0 - kept.x1 < LABEL_GAP_PX:
                label.set_visible(False)
            else:
                kept = box


def draw_plot(report: BenchReport) -> Any:
    """The matplotlib Figure of the latency distributions (the caller closes it)."""
    require("matplotlib", extra="plot", purpose="to draw --plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    shapes = report.shapes()
    if not shapes:
        raise UsageError("nothing was measured, so there is nothing to plot")
    rows_per = max(len([r for r in report.results if r.shape == s]) for s in shapes)
    fig, axes = plt.subplots(len(shapes), 1, figsize=(8, 1.2 + 0.6 * rows_per * len(shapes)),
                             squeeze=False, dpi=DPI)
    # matplotlib 3.10 added `orientation` and deprecated `vert`
    major_minor = tuple(int(v) for v in matplotlib.__version__.split(".")[:2])
    horizontal = ({"orientation": "horizontal"} if major_minor >= (3, 10) else {"vert": False})
    try:
        for ax, shape in zip(axes[:, 0], shapes, strict=True):
            rows = [r for r in report.results if r.shape == shape]
            ax.boxplot([r.samples_ms for r in rows], whis=(1, 99), **horizontal)
            ax.set_yticks(range(1, len(rows) + 1), [r.backend for r in rows])
            _readable_log_axis(ax)
            ax.set_xlabel("latency per batch (ms, log scale); whiskers p1-p99")
            ax.set_title(f"input {shape_text(shape)}")
            ax.grid(axis="x", which="major", alpha=0.3)
        env = report.environment
        fig.suptitle(f"segdeploy bench - {env.get('cpu', '?')}"
                     + (f" / {env['gpus'][0]}" if env.get("gpus") else "")
                     + f" - {env.get('date', '')[:10]}", fontsize=9)
        fig.tight_layout()
        hide_overlapping_labels(fig)
    except BaseException:
        plt.close(fig)
        raise
    return fig


def write_plot(report: BenchReport, path: str | Path) -> Path:
    """Latency distribution per backend (one panel per shape), written atomically.

    The image format follows the file's suffix (.png, .svg, .pdf).
    """
    require("matplotlib", extra="plot", purpose="to draw --plot")
    fmt = check_plot_path(path)
    fig = draw_plot(report)
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="jpeg" if fmt == "jpg" else fmt, dpi=DPI)
    finally:
        plt.close(fig)
    return Path(path)
