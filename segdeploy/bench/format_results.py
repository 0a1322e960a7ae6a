"""What `segdeploy benchmark` measured: one row per format, accuracy beside speed, and its
renderings (a rich table, markdown for BENCHMARKS.md, JSON, the latency plot).

`BenchmarkResult.to_dict()` holds every row with every figure, so other reports (HTML)
can be drawn from it without re-running anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from segdeploy.atomic import write_json_atomic
from segdeploy.bench.plot import check_plot_path as check_plot_path  # re-exported

BENCHMARK_SCHEMA_VERSION = 1
#: row statuses: the PyTorch reference, measured and within the precision's gate, measured
#: but outside it, not runnable here, no artifact, artifact made but it did not run
REFERENCE, OK, GATE_FAILED = "reference", "ok", "gate failed"
NOT_AVAILABLE, EXPORT_FAILED, RUN_FAILED = "not available", "export failed", "run failed"
MEASURED = (REFERENCE, OK, GATE_FAILED)


@dataclass
class FormatRow:
    """One format: what ran, its status (and why), file size, accuracy and speed."""

    format: str
    backend: str
    precision: str
    status: str
    reason: str = ""
    file: str = ""
    size_mb: float | None = None
    #: argmax agreement with the PyTorch masks, percent of pixels
    agreement: float | None = None
    #: mean IoU against the labels, points; the drop is PyTorch's mIoU minus this one
    miou: float | None = None
    miou_drop: float | None = None
    p50_ms: float | None = None
    images_per_s: float | None = None
    #: the gate the status was judged by: {"min_agreement": %, "max_miou_drop": points}
    gate: dict[str, Any] = field(default_factory=dict)
    #: what ran beyond the table: OpenVINO's inference precision, reused artifacts...
    info: dict[str, Any] = field(default_factory=dict)
    samples_ms: list[float] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.status in MEASURED

    def to_dict(self, *, with_samples: bool = True) -> dict[str, Any]:
        out = asdict(self)
        if not with_samples:
            out.pop("samples_ms")
        return out


@dataclass
class BenchmarkResult:
    """Every format's row for one checkpoint on one dataset's validation images."""

    checkpoint: str
    data: str
    images: int
    image_size: list[int]
    environment: dict[str, Any]
    settings: dict[str, Any]
    rows: list[FormatRow] = field(default_factory=list)

    def row(self, key: str) -> FormatRow:
        return next(r for r in self.rows if r.format == key)

    def to_dict(self, *, with_samples: bool = True) -> dict[str, Any]:
        return {"schema_version": BENCHMARK_SCHEMA_VERSION, "checkpoint": self.checkpoint,
                "data": self.data, "images": self.images, "image_size": self.image_size,
                "environment": self.environment, "settings": self.settings,
                "rows": [r.to_dict(with_samples=with_samples) for r in self.rows]}


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _status(row: FormatRow) -> str:
    return row.status + (f": {row.reason}" if row.reason else "")


def cells(row: FormatRow) -> list[str]:
    """The table's cells of one row, as text (the rich table and markdown share them)."""
    return [row.format, row.backend, row.precision, _status(row), _num(row.size_mb, ".1f"),
            _num(row.agreement, ".2f"), _num(row.miou, ".2f"),
            "-" if row.miou_drop is None else f"{row.miou_drop:+.2f}",
            _num(row.p50_ms, ".2f"), _num(row.images_per_s, ".1f")]


HEADERS = ("format", "backend", "precision", "status", "size MB", "agree %", "mIoU",
           "mIoU drop", "p50 ms", "img/s")


def render_table(result: BenchmarkResult) -> Any:
    """A rich Table of every row (measured rows coloured by status)."""
    from rich.markup import escape
    from rich.table import Table

    from segdeploy.bench.environment import describe_environment

    table = Table(title=f"segdeploy benchmark: {Path(result.checkpoint).name} on "
                        f"{result.data} val x{result.images}",
                  caption=describe_environment(result.environment), caption_justify="left")
    for name in HEADERS:
        table.add_column(name, justify="left" if name in HEADERS[:4] else "right",
                         overflow="fold")
    colour = {OK: "green", GATE_FAILED: "red", REFERENCE: "cyan"}
    for row in result.rows:
        text = [escape(c) for c in cells(row)]
        style = colour.get(row.status, "yellow")
        text[3] = f"[{style}]{text[3]}[/]"
        table.add_row(*text)
    return table


def legend(result: BenchmarkResult) -> str:
    """What the columns mean, in one line under the table."""
    timing = result.settings.get("timing", "interleaved")
    return ("agree % = pixels whose class equals PyTorch's; mIoU against the labels, drop = "
            "PyTorch's minus this one (points); gate = the precision's (comparison.py): fp32 "
            "agree >= 99.9%, fp16/bf16 >= 99.5% and drop <= 0.5, int8 >= 99% and drop <= 1; "
            f"p50 ms and img/s per image, Segmenter.predict end to end, {timing}")


def markdown_table(result: BenchmarkResult) -> str:
    """The same table in GitHub markdown (for BENCHMARKS.md)."""
    from segdeploy.bench.report import markdown

    return markdown(HEADERS, ([c.replace("|", "/") for c in cells(row)] for row in result.rows),
                    left=4)


def write_json(result: BenchmarkResult, path: str | Path) -> Path:
    """Every row, samples included, written atomically."""
    return write_json_atomic(path, result.to_dict(with_samples=True))


def latency_report(result: BenchmarkResult) -> Any:
    """The measured rows as a bench BenchReport, so bench's latency plot draws them."""
    from segdeploy.bench.results import BackendResult, BenchReport
    from segdeploy.bench.timing import summarize

    shape = (1, int(result.settings.get("channels", 1)), *result.image_size)
    rows = [r for r in result.rows if r.samples_ms]
    return BenchReport(environment=result.environment, settings=dict(result.settings),
                       results=[BackendResult(backend=f"{r.format} ({r.status})",
                                              shape=tuple(shape),
                                              stats=summarize([s / 1e3 for s in r.samples_ms]),
                                              samples_ms=list(r.samples_ms))
                                for r in rows])


def write_plot(result: BenchmarkResult, path: str | Path) -> Path:
    """The latency distribution of every measured row (bench's plot: one box per format)."""
    from segdeploy.bench import plot

    return plot.write_plot(latency_report(result), path)
