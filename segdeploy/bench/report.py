"""Benchmark reports: a rich table on the terminal, JSON, markdown, and a latency plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segdeploy.atomic import atomic_path, write_json_atomic
from segdeploy.bench.environment import describe_environment
from segdeploy.bench.results import BenchReport, shape_text
from segdeploy.errors import UsageError, require

_PHASE_NAMES = {"h2d": "host->device", "compute": "GPU compute", "d2h": "device->host"}


def _ms(v: float) -> str:
    return f"{v:.3f}" if v < 10 else f"{v:.2f}" if v < 100 else f"{v:.1f}"


def render_table(report: BenchReport) -> Any:
    """A rich Table: one row per backend and shape, phase rows under TensorRT backends."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="segdeploy bench: latency (ms) and throughput",
                  caption=describe_environment(report.environment), caption_justify="left")
    for name, justify in (("backend", "left"), ("shape", "left"), ("mean", "right"),
                          ("median", "right"), ("p90", "right"), ("p95", "right"),
                          ("p99", "right"), ("min", "right"), ("max", "right"),
                          ("CV", "right"), ("img/s", "right"), ("speed-up", "right")):
        table.add_column(name, justify=justify,  # type: ignore[arg-type]
                         no_wrap=name in ("backend", "shape"))
    for shape in report.shapes():
        for r in (r for r in report.results if r.shape == shape):
            s = r.stats
            flag = " [yellow]![/]" if r.warnings else ""
            table.add_row(escape(r.backend) + flag, shape_text(shape), _ms(s.mean_ms),
                          _ms(s.median_ms), _ms(s.p90_ms), _ms(s.p95_ms), _ms(s.p99_ms),
                          _ms(s.min_ms), _ms(s.max_ms), f"{s.cv:.1%}", f"{s.throughput:.1f}",
                          f"{r.speedup:.2f}x")
            for phase, ps in r.phases.items():
                table.add_row(f"  [dim]{_PHASE_NAMES.get(phase, phase)}[/]", "",
                              _ms(ps.mean_ms), _ms(ps.median_ms), _ms(ps.p90_ms),
                              _ms(ps.p95_ms), _ms(ps.p99_ms), _ms(ps.min_ms), _ms(ps.max_ms),
                              f"{ps.cv:.1%}", "", "", style="dim")
        table.add_section()
    return table


def print_report(report: BenchReport, console: Any = None) -> None:
    """The table, then one line per warning and per skipped backend."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    console.print(render_table(report))
    for r in report.results:
        if r.warnings:
            console.print(f"[yellow]warning[/] {escape(r.backend)} {shape_text(r.shape)}: "
                          + escape("; ".join(r.warnings)), highlight=False)
    for name, why in report.skipped.items():
        console.print(f"[yellow]skipped[/] {escape(name)}: {escape(why)}", highlight=False)


def write_json(report: BenchReport, path: str | Path) -> Path:
    """The whole report, samples included, written atomically."""
    return write_json_atomic(path, report.to_dict(with_samples=True))


def markdown_table(report: BenchReport) -> str:
    """A GitHub-markdown table of the same numbers (for BENCHMARKS.md)."""
    lines = ["| backend | shape | mean ms | median ms | p90 ms | p99 ms | CV | img/s | speed-up |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report.results:
        s = r.stats
        lines.append(f"| {r.backend} | {shape_text(r.shape)} | {_ms(s.mean_ms)} | "
                     f"{_ms(s.median_ms)} | {_ms(s.p90_ms)} | {_ms(s.p99_ms)} | {s.cv:.1%} | "
                     f"{s.throughput:.1f} | {r.speedup:.2f}x |")
    return "\n".join(lines)


def check_plot_path(path: str | Path) -> str:
    """The image format a plot path asks for; an unknown suffix is a UsageError."""
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in ("png", "svg", "pdf", "jpg", "jpeg"):
        raise UsageError(f"plot path {path} has suffix {Path(path).suffix!r}",
                         expected="a .png, .svg, .pdf or .jpg file")
    return fmt


def write_plot(report: BenchReport, path: str | Path) -> Path:
    """Latency distribution per backend (one panel per shape), written atomically.

    The image format follows the file's suffix (.png, .svg, .pdf).
    """
    require("matplotlib", extra="plot", purpose="to draw --plot")
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fmt = check_plot_path(path)
    shapes = report.shapes()
    if not shapes:
        raise UsageError("nothing was measured, so there is nothing to plot")
    fig, axes = plt.subplots(len(shapes), 1, figsize=(8, 1.2 + 0.6 * max(
        len([r for r in report.results if r.shape == s]) for s in shapes) * len(shapes)),
        squeeze=False)
    # matplotlib 3.10 added `orientation` and deprecated `vert`
    major_minor = tuple(int(v) for v in matplotlib.__version__.split(".")[:2])
    horizontal = ({"orientation": "horizontal"} if major_minor >= (3, 10) else {"vert": False})
    try:
        for ax, shape in zip(axes[:, 0], shapes, strict=True):
            rows = [r for r in report.results if r.shape == shape]
            ax.boxplot([r.samples_ms for r in rows], whis=(1, 99), **horizontal)
            ax.set_yticks(range(1, len(rows) + 1), [r.backend for r in rows])
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
            ax.set_xlabel("latency per batch (ms, log scale); whiskers p1-p99")
            ax.set_title(f"input {shape_text(shape)}")
            ax.grid(axis="x", alpha=0.3)
        env = report.environment
        fig.suptitle(f"segdeploy bench - {env.get('cpu', '?')}"
                     + (f" / {env['gpus'][0]}" if env.get("gpus") else "")
                     + f" - {env.get('date', '')[:10]}", fontsize=9)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="jpeg" if fmt == "jpg" else fmt, dpi=120)
    finally:
        plt.close(fig)
    return Path(path)
