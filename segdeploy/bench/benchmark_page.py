"""`segdeploy benchmark --report b.html`: the one table, its gates and the latency plot as a
self-contained page (segdeploy.reports), for people who read results in a browser or a CI
artifact rather than a terminal.

The verdict counts formats, it does not pass or fail the run: a format outside its gate is a
finding, not an error (the table says which and why).
"""

from __future__ import annotations

import io
from pathlib import Path

from segdeploy.bench import format_results as fr
from segdeploy.bench.environment import describe_environment
from segdeploy.reports.html import Figure, HtmlReport, Notes, Table, Verdict, write_html


def benchmark_page(result: fr.BenchmarkResult, *, plot: bool = True) -> HtmlReport:
    """The page's parts: verdict, facts, the table (rows outside their gate in red), the
    reasons of rows that did not run, and the latency plot when matplotlib is installed."""
    rows = [r for r in result.rows if r.status != fr.REFERENCE]
    ok = [r for r in rows if r.status == fr.OK]
    failed = [r for r in rows if r.status == fr.GATE_FAILED]
    fastest = min(ok, key=lambda r: r.p50_ms or float("inf"), default=None)
    text = f"{len(ok)} of {len(rows)} formats within their gate"
    if failed:
        text += f"; outside it: {', '.join(r.format for r in failed)}"
    if fastest is not None and fastest.p50_ms is not None:
        text += f"; fastest within its gate: {fastest.format} ({fastest.p50_ms:.2f} ms p50)"
    verdict = Verdict(None if not failed else False, text)
    status = [False if r.status == fr.GATE_FAILED else None for r in result.rows]
    table = Table("Formats", fr.HEADERS, [fr.cells(r) for r in result.rows],
                  caption=fr.legend(result), status=status)
    sections: list[Table | Notes | Figure] = [table]
    unrun = [f"{r.format}: {r.status}: {r.reason}" for r in result.rows
             if not r.measured and r.reason]
    if unrun:
        sections.append(Notes("Formats that did not run", unrun))
    figure = _latency_figure(result) if plot else None
    if figure is not None:
        sections.append(figure)
    sections.append(Notes("Machine", describe_environment(result.environment).splitlines()))
    facts = [("checkpoint", result.checkpoint), ("data", f"{result.data}, {result.images} "
                                                         "validation images"),
             ("image size", "x".join(map(str, result.image_size)))]
    return HtmlReport(f"segdeploy benchmark: {Path(result.checkpoint).name}", verdict,
                      facts=facts, sections=sections)


def write_benchmark_page(result: fr.BenchmarkResult, path: str | Path) -> Path:
    return write_html(benchmark_page(result), path)


def _latency_figure(result: fr.BenchmarkResult) -> Figure | None:
    """bench's latency plot as PNG bytes; None without matplotlib or without samples."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    if not any(r.samples_ms for r in result.rows):
        return None
    import matplotlib.pyplot as plt

    from segdeploy.bench.plot import draw_plot

    fig = draw_plot(fr.latency_report(result))
    try:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
    finally:
        plt.close(fig)
    return Figure("Latency per image (Segmenter.predict, interleaved)", buf.getvalue())
