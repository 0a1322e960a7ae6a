"""Benchmark reports: a rich table on the terminal, JSON, markdown (the plot: plot.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from segdeploy.atomic import write_json_atomic
from segdeploy.bench.environment import describe_environment
from segdeploy.bench.plot import check_plot_path as check_plot_path  # re-exported
from segdeploy.bench.plot import write_plot as write_plot  # re-exported
from segdeploy.bench.results import BackendResult, BenchReport, shape_text
from segdeploy.bench.timing import warning_kind

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


def legend(report: BenchReport) -> str:
    """One line explaining every mark the table uses (and only those): a mark nobody explains
    reads as noise, or worse, as a precision the model does not have."""
    marks = []
    if any(r.warnings for r in report.results):
        marks.append("! = too few samples or high spread, see below")
    rows = report.results
    ov = next((r for r in rows if _paren(r) and "inference_precision" in r.info), None)
    if ov is not None:
        graph, used = ov.info.get("precision", "?"), ov.info["inference_precision"]
        marks.append(f"({used}) after openvino {graph} = OpenVINO computed the {graph} graph "
                     f"in {used}")
    if any(_paren(r) and "providers" in r.info for r in rows):
        marks.append("(cuda) = the ONNX Runtime execution provider, when not the CPU")
    if any(r.backend.endswith(" graphs") for r in rows):
        marks.append("graphs = replayed as a CUDA graph")
    if any(r.phases for r in rows):
        marks.append("indented rows = the TensorRT row's time split into phases")
    base = report.settings.get("speedup_baseline", "the slowest backend")
    marks.append(f"speed-up = over {base} at the same shape")
    return "legend: " + "; ".join(marks)


def _paren(r: BackendResult) -> bool:
    return r.backend.rstrip().endswith(")")


def warning_summary(report: BenchReport, *, json_path: str | None = None) -> str | None:
    """One line for all rows marked `!` (not one per row): how many, why, what to change."""
    flagged = [r for r in report.results if r.warnings]
    if not flagged:
        return None
    kinds = {k: sum(any(warning_kind(w) == k for w in r.warnings) for r in flagged)
             for k in ("samples", "spread", "other")}
    why = [f"{kinds['samples']} too few samples (raise --iterations or --duration)"
           if kinds["samples"] else "",
           f"{kinds['spread']} high spread (close other programs, pin --threads or raise "
           "--warmup)" if kinds["spread"] else "",
           f"{kinds['other']} another note" if kinds["other"] else ""]
    where = (f"each row's reasons are in {json_path} (\"warnings\")" if json_path
             else "--json FILE lists each row's reasons")
    return (f"{len(flagged)} of {len(report.results)} rows are marked !: "
            + ", ".join(w for w in why if w) + f"; {where}")


def print_report(report: BenchReport, console: Any = None, *,
                 json_path: str | None = None) -> None:
    """The table, a legend of its marks, one summary line for every row marked `!` (the
    details go to --json), then one line per skipped backend."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    console.print(render_table(report))
    console.print(f"[dim]{escape(legend(report))}[/]", highlight=False)
    summary = warning_summary(report, json_path=json_path)
    if summary:
        console.print(f"[yellow]warning[/] {escape(summary)}", highlight=False)
    for name, why in report.skipped.items():
        console.print(f"[yellow]skipped[/] {escape(name)}: {escape(why)}", highlight=False)


def write_json(report: BenchReport, path: str | Path) -> Path:
    """The whole report, samples included, written atomically."""
    return write_json_atomic(path, report.to_dict(with_samples=True))


def markdown(headers: Sequence[str], rows: Iterable[Sequence[str]], *, left: int) -> str:
    """A GitHub-markdown table (for BENCHMARKS.md): the first `left` columns left-aligned,
    the rest (numbers) right-aligned."""
    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" if i < left else "---:" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_table(report: BenchReport) -> str:
    """A GitHub-markdown table of the same numbers (for BENCHMARKS.md)."""
    headers = ("backend", "shape", "mean ms", "median ms", "p90 ms", "p99 ms", "CV", "img/s",
               "speed-up")
    return markdown(headers, ([r.backend, shape_text(r.shape), _ms(r.stats.mean_ms),
                               _ms(r.stats.median_ms), _ms(r.stats.p90_ms),
                               _ms(r.stats.p99_ms), f"{r.stats.cv:.1%}",
                               f"{r.stats.throughput:.1f}", f"{r.speedup:.2f}x"]
                              for r in report.results), left=2)
