"""`segdeploy verify --report verify.html`: the parity report as one page a person can read.

It shows WHERE an engine disagrees with PyTorch, which the numbers alone do not: the verdict,
the per-size table, the per-class IoU between the two masks (PyTorch as reference), and for
the worst images side by side the image, both masks and a disagreement map whose colours
name the (PyTorch class, engine class) pairs, with their pixel counts in a legend. verify
does not time anything, so the page has no latency plot (bench's pages do).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segdeploy.imaging import as_hwc_uint8
from segdeploy.reports.html import (
    HtmlReport,
    Legend,
    Notes,
    Panel,
    PanelRow,
    Swatch,
    Table,
    Verdict,
    write_html,
)
from segdeploy.reports.masks import (
    class_colour,
    disagreement_map,
    disagreement_pairs,
    mask_rgb,
    pair_colours,
)
from segdeploy.verify.worst import WorstImage

SIZE_COLUMNS = ("size", "output", "images", "max |err|", "mean |err|", "p99 |err|",
                "agreement %", "mIoU PyTorch", "mIoU engine", "mIoU drop", "result")


def verify_page(report: dict[str, Any], worst: Sequence[WorstImage] = ()) -> HtmlReport:
    """The page's parts from run_verify's report and the images it kept."""
    classes = [str(c) for c in report.get("classes") or []]
    sections: list[Any] = [size_table(report), iou_table(report)]
    failures = [f for r in report["sizes"] for f in r.get("failures", [])]
    if failures or report.get("notes"):
        sections.append(Notes("Failures and notes", [*failures, *report.get("notes", [])]))
    if worst:
        sections.append(Legend("Classes (masks)", [
            Swatch(class_colour(i), _name(classes, i)) for i in range(_num_classes(report))]))
        totals: dict[tuple[int, int], int] = {}
        pairs_of = [disagreement_pairs(w.reference, w.engine) for w in worst]
        for pairs in pairs_of:
            for pair, n in pairs.items():
                totals[pair] = totals.get(pair, 0) + n
        colours = pair_colours(sorted(totals, key=lambda p: (-totals[p], p)))
        sections += [_worst_row(w, pairs, colours, classes)
                     for w, pairs in zip(worst, pairs_of, strict=True)]
    return HtmlReport(f"verify {report['engine_name']} against PyTorch", _verdict(report),
                      facts=_facts(report), sections=sections)


def write_verify_page(report: dict[str, Any], worst: Sequence[WorstImage],
                      path: str | Path) -> Path:
    return write_html(verify_page(report, worst), path)


def size_table(report: dict[str, Any]) -> Table:
    """One row per size: logit errors, agreement, mIoU of each side against the labels."""
    rows, status = [], []
    for r in report["sizes"]:
        err = r["abs_error"]
        rows.append(["x".join(map(str, r["size"])), "x".join(map(str, r["output_size"])),
                     r["images"], f"{err['max']:.2e}", f"{err['mean']:.2e}",
                     f"{err['p99']:.2e}", f"{r['agreement']:.3f}",
                     _fmt(r.get("miou_reference"), ".2f"), _fmt(r.get("miou_engine"), ".2f"),
                     _fmt(r.get("miou_drop"), "+.2f"), "FAIL" if r.get("failures") else "pass"])
        status.append(not r.get("failures"))
    return Table("Per size", SIZE_COLUMNS, rows, caption=_needed(report["thresholds"]),
                 status=status)


def iou_table(report: dict[str, Any]) -> Table:
    """Per-class IoU between the PyTorch mask (reference) and the engine mask, per size."""
    classes = [str(c) for c in report.get("classes") or []]
    columns = ["size", *(_name(classes, i) for i in range(_num_classes(report)))]
    rows = [["x".join(map(str, r["size"])), *(_fmt(v, ".4f") for v in r["iou_between"])]
            for r in report["sizes"]]
    return Table("Per-class IoU between the PyTorch and engine masks", columns, rows,
                 caption="PyTorch's mask is the reference; 1.0000 = the engine marks exactly "
                         "the same pixels; - = the class appears in neither mask.")


def _worst_row(w: WorstImage, pairs: dict[tuple[int, int], int],
               colours: dict[tuple[int, int], tuple[int, int, int]],
               classes: list[str]) -> PanelRow:
    h, w_ = w.reference.shape
    differ = sum(pairs.values())
    panels = [Panel("image", as_hwc_uint8(w.image, 3), smooth=True),
              Panel("PyTorch mask", mask_rgb(w.reference)),
              Panel("engine mask", mask_rgb(w.engine)),
              Panel("disagreement", disagreement_map(w.image, w.reference, w.engine, colours),
                    caption=f"{differ} of {h * w_} pixels differ")]
    legend = [Swatch(colours[p], f"PyTorch {_name(classes, p[0])} \u2192 engine "
                                 f"{_name(classes, p[1])}: {n} px") for p, n in pairs.items()]
    return PanelRow(f"image {w.index} at {w.size[0]}x{w.size[1]}: {w.agreement:.3f}% of "
                    "pixels agree", panels, legend=legend,
                    note="" if pairs else "Both masks are identical on this image.")


def _verdict(report: dict[str, Any]) -> Verdict:
    what = f"{report['engine_name']} ({report['precision']}, {report['backend']})"
    if report["passed"]:
        return Verdict(True, f"PASS: {what} agrees with PyTorch at every size "
                             f"({_needed(report['thresholds'])})")
    fails = [f for r in report["sizes"] for f in r.get("failures", [])]
    more = f" (and {len(fails) - 1} more)" if len(fails) > 1 else ""
    return Verdict(False, f"FAIL: {what} disagrees with PyTorch: {fails[0]}{more}")


def _facts(report: dict[str, Any]) -> list[tuple[str, str]]:
    judged = report.get("judged_as")
    return [
        ("checkpoint", str(report["checkpoint"])), ("engine", str(report["engine"])),
        ("backend", str(report["backend"])),
        ("precision", str(report["precision"]) + (f" (judged as {judged})"
                                                   if judged and judged != report["precision"]
                                                   else "")),
        ("model", f"{report['arch']}, {_num_classes(report)} classes"),
        ("data", f"{report['images']} {report['data']} {report['split']} images"),
        ("stride padding", "yes" if report.get("pad_to_stride") else "no"),
    ]


def _needed(th: dict[str, Any]) -> str:
    return (f"needed: agreement >= {th['min_agreement']:g}%"
            + (f", mIoU drop <= {th['max_miou_drop']:g} points"
               if th.get("max_miou_drop") is not None else ""))


def _num_classes(report: dict[str, Any]) -> int:
    return max([len(report.get("classes") or []),
                *(len(r["iou_between"]) for r in report["sizes"])])


def _name(classes: list[str], i: int) -> str:
    return classes[i] if i < len(classes) else f"class {i}"


def _fmt(v: float | None, spec: str) -> str | None:
    return None if v is None else format(v, spec)
