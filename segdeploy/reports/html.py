"""One self-contained HTML page from plain data: a verdict, facts, tables, image panels with
legends, and a plot.

Images are PNGs embedded as base64 data URIs (Pillow), the style sheet is inline, and the
page has no script and no link to anything: it opens the same from a laptop, a CI artifact
or an e-mail attachment, with no network. Commands build the parts (`verify` its parity
tables and worst images, `bench` its latency tables and plot) and call `write_html`, which
writes the file atomically.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from segdeploy.atomic import atomic_path
from segdeploy.errors import UsageError

Cell = str | int | float | None
RGB = tuple[int, int, int]
#: panels larger than this (pixels, longest side) are scaled down before embedding
MAX_PANEL_SIDE = 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Verdict:
    """The headline: passed True (green), False (red) or None (no judgement, grey)."""
    passed: bool | None
    text: str


@dataclass(frozen=True)
class Table:
    """Rows of cells under column names; `status[i]` False draws row i as failing."""
    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell]]
    caption: str = ""
    status: Sequence[bool | None] = ()


@dataclass(frozen=True)
class Swatch:
    colour: RGB
    label: str


@dataclass(frozen=True)
class Legend:
    title: str
    swatches: Sequence[Swatch]


@dataclass(frozen=True)
class Panel:
    """One picture: HxW or HxWx{3,4} uint8. `smooth` False (masks) keeps pixels square
    when scaled; True (photos) lets the browser smooth them."""
    title: str
    pixels: np.ndarray
    caption: str = ""
    smooth: bool = False


@dataclass(frozen=True)
class PanelRow:
    """Pictures side by side (e.g. image, reference mask, engine mask, disagreement)."""
    title: str
    panels: Sequence[Panel]
    legend: Sequence[Swatch] = ()
    note: str = ""


@dataclass(frozen=True)
class Figure:
    """A finished plot as PNG bytes (e.g. matplotlib's savefig into a BytesIO)."""
    title: str
    png: bytes
    caption: str = ""


@dataclass(frozen=True)
class Notes:
    title: str
    lines: Sequence[str]


Section = Table | Legend | PanelRow | Figure | Notes


@dataclass(frozen=True)
class HtmlReport:
    title: str
    verdict: Verdict | None = None
    facts: Sequence[tuple[str, str]] = ()
    sections: Sequence[Section] = ()
    generated: str = field(default_factory=lambda: datetime.now(timezone.utc)
                           .strftime("%Y-%m-%d %H:%M UTC"))


def png_data_uri(pixels: np.ndarray, *, smooth: bool = False,
                 max_side: int = MAX_PANEL_SIDE) -> str:
    """HxW or HxWx{3,4} uint8 as a data:image/png;base64 URI, scaled down past max_side."""
    from PIL import Image

    arr = np.asarray(pixels)
    shape_ok = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))
    if arr.dtype != np.uint8 or not shape_ok or arr.size == 0:
        raise UsageError(f"a report panel of shape {arr.shape} and dtype {arr.dtype}",
                         expected="HxW or HxWx3 / HxWx4 uint8 pixels")
    img = Image.fromarray(np.ascontiguousarray(arr))
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR if smooth else Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return _data_uri(buf.getvalue())


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(report: HtmlReport) -> str:
    """The page as one string (UTF-8 text, nothing fetched from anywhere)."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
             f"<title>{_e(report.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
             f"<h1>{_e(report.title)}</h1>\n"]
    if report.verdict is not None:
        v = report.verdict
        kind = {True: "pass", False: "fail", None: "info"}[v.passed]
        parts.append(f"<p id=\"verdict\" class=\"verdict {kind}\">{_e(v.text)}</p>\n")
    if report.facts:
        parts.append("<dl class=\"facts\">"
                     + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in report.facts)
                     + "</dl>\n")
    parts += [_section(s) for s in report.sections]
    parts.append(f"<footer>segdeploy {_e(_version())}, {_e(report.generated)}</footer>\n"
                 "</body>\n</html>\n")
    return "".join(parts)


def check_report_path(path: str | Path) -> None:
    """Before a long run: a writable .html / .htm path (the report is one HTML page)."""
    from segdeploy.atomic import check_output_path

    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report {path} has suffix {path.suffix!r}",
                         expected="an .html file (the report is one HTML page)",
                         fix=f"use --report {path.with_suffix('.html')}")
    check_output_path(path)


def write_html(report: HtmlReport, path: str | Path) -> Path:
    """Render and write atomically (no half-written page on an error)."""
    text = render_html(report)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _table(t: Table) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in t.columns)
    rows = []
    for i, row in enumerate(t.rows):
        status = t.status[i] if i < len(t.status) else None
        cls = {True: " class=\"ok\"", False: " class=\"bad\"", None: ""}[status]
        cells = "".join(("<td class=\"num\">" if _numeric(c) else "<td>") + _e(_cell(c))
                        + "</td>" for c in row)
        rows.append(f"<tr{cls}>{cells}</tr>")
    caption = f"<p class=\"caption\">{_e(t.caption)}</p>" if t.caption else ""
    return (f"<section><h2>{_e(t.title)}</h2><table><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>{caption}</section>\n")


def _swatches(swatches: Sequence[Swatch]) -> str:
    items = "".join(f"<li><span class=\"swatch\" style=\"background:{_hex(s.colour)}\">"
                    f"</span>{_e(s.label)}</li>" for s in swatches)
    return f"<ul class=\"legend\">{items}</ul>"


def _legend(legend: Legend) -> str:
    return f"<section><h2>{_e(legend.title)}</h2>{_swatches(legend.swatches)}</section>\n"


def _panel_row(row: PanelRow) -> str:
    figures = []
    for p in row.panels:
        h, w = np.asarray(p.pixels).shape[:2]
        cls = "smooth" if p.smooth else "pixelated"
        caption = f"<span class=\"caption\">{_e(p.caption)}</span>" if p.caption else ""
        src = png_data_uri(p.pixels, smooth=p.smooth)
        figures.append(f"<figure><img class=\"{cls}\" src=\"{src}\" "
                       f"width=\"{w}\" height=\"{h}\" alt=\"{_e(p.title)}\">"
                       f"<figcaption>{_e(p.title)}{caption}</figcaption></figure>")
    note = f"<p class=\"caption\">{_e(row.note)}</p>" if row.note else ""
    legend = _swatches(row.legend) if row.legend else ""
    return (f"<section class=\"panels\"><h2>{_e(row.title)}</h2>"
            f"<div class=\"row\">{''.join(figures)}</div>{legend}{note}</section>\n")


def _figure(fig: Figure) -> str:
    if not fig.png.startswith(_PNG_SIGNATURE):
        raise UsageError(f"the report figure {fig.title!r} is not a PNG",
                         expected="PNG bytes (e.g. savefig(buf, format='png'))")
    caption = f"<p class=\"caption\">{_e(fig.caption)}</p>" if fig.caption else ""
    return (f"<section><h2>{_e(fig.title)}</h2><img class=\"plot smooth\" "
            f"src=\"{_data_uri(fig.png)}\" alt=\"{_e(fig.title)}\">{caption}</section>\n")


def _notes(notes: Notes) -> str:
    items = "".join(f"<li>{_e(line)}</li>" for line in notes.lines)
    return f"<section><h2>{_e(notes.title)}</h2><ul class=\"notes\">{items}</ul></section>\n"


def _section(section: Section) -> str:
    if isinstance(section, Table):
        return _table(section)
    if isinstance(section, Legend):
        return _legend(section)
    if isinstance(section, PanelRow):
        return _panel_row(section)
    if isinstance(section, Figure):
        return _figure(section)
    if isinstance(section, Notes):
        return _notes(section)
    raise TypeError(f"a report section of type {type(section).__name__}: expected one of "
                    "Table, Legend, PanelRow, Figure, Notes")


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _numeric(c: Cell) -> bool:
    return isinstance(c, (int, float)) and not isinstance(c, bool)


def _cell(c: Cell) -> str:
    if c is None:
        return "-"
    if isinstance(c, float):
        return f"{c:.4g}"
    return str(c)


def _hex(colour: RGB) -> str:
    r, g, b = (max(0, min(255, int(v))) for v in colour)
    return f"#{r:02x}{g:02x}{b:02x}"


def _version() -> str:
    from segdeploy import __version__

    return __version__


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
 margin:1.5rem auto;max-width:1200px;padding:0 1rem;color:#1d2328;background:#fafbfc;
 line-height:1.4}
h1{font-size:1.5rem;margin:0 0 .8rem}
h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:1px solid #d6dbe0;padding-bottom:.2rem}
.verdict{font-size:1.15rem;font-weight:600;padding:.6rem .9rem;border-radius:6px;margin:.6rem 0}
.verdict.pass{background:#e3f5e6;color:#17612a;border:1px solid #9cd3a8}
.verdict.fail{background:#fde7e7;color:#9b1c1c;border:1px solid #f0a3a3}
.verdict.info{background:#eef1f4;color:#333;border:1px solid #c9d0d6}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.6rem 0}
dl.facts dt{color:#5b6670}dl.facts dd{margin:0;font-family:ui-monospace,monospace;
 overflow-wrap:anywhere}
section{overflow-x:auto}table{border-collapse:collapse;font-size:.92rem;background:#fff}
th,td{border:1px solid #d6dbe0;padding:.25rem .55rem;text-align:left}
th{background:#eef1f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fde7e7}tr.bad td:last-child{color:#9b1c1c;font-weight:600}
tr.ok td:last-child{color:#17612a}
.caption{color:#5b6670;font-size:.88rem;margin:.3rem 0}
.row{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:.6rem}
figure{margin:0;background:#fff;border:1px solid #d6dbe0;border-radius:4px;padding:.35rem}
figure img{width:100%;height:auto;display:block;background:#000}
figcaption{font-size:.88rem;margin-top:.25rem}figcaption .caption{display:block;margin:0}
img.pixelated{image-rendering:pixelated}img.plot{max-width:100%;height:auto}
ul.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3rem 1.1rem;
 font-size:.9rem;margin:.5rem 0}
.swatch{display:inline-block;width:.9rem;height:.9rem;border:1px solid #888;
 vertical-align:-.1rem;margin-right:.35rem}
ul.notes{padding-left:1.2rem}
footer{margin-top:2rem;color:#8a949c;font-size:.8rem}
"""
