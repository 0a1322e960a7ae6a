"""Parity reports: a rich table per size, pass/fail against the thresholds, and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segdeploy.atomic import write_json_atomic

VERIFY_SCHEMA_VERSION = 1


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render_table(report: dict[str, Any]) -> Any:
    """Rows: one per size. Columns: logit errors, agreement, mIoU of each side vs the labels."""
    from rich import box
    from rich.table import Table

    th = report["thresholds"]
    table = Table(title=f"verify {report['engine_name']} ({report['precision']}) vs PyTorch "
                        f"on {report['images']} {report['data']} {report['split']} images",
                  caption=f"{'passes' if report['passed'] else 'FAILS'}; needed: agreement "
                          f">= {th['min_agreement']:g}%"
                          + (f", mIoU drop <= {th['max_miou_drop']:g} points"
                             if th.get("max_miou_drop") is not None else ""),
                  caption_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                  collapse_padding=True, pad_edge=False)
    # |logit error| columns, then argmax agreement, then mIoU (points) vs the labels
    for name in ("size", "max err", "mean err", "p99 err", "agree %", "mIoU pt",
                 "mIoU eng", "drop", "result"):
        table.add_column(name, justify="left" if name in ("size", "result") else "right",
                         no_wrap=True)
    for r in report["sizes"]:
        err = r["abs_error"]
        table.add_row(
            "x".join(map(str, r["size"])), f"{err['max']:.1e}",
            f"{err['mean']:.1e}", f"{err['p99']:.1e}", f"{r['agreement']:.3f}",
            _num(r.get("miou_reference"), ".2f"), _num(r.get("miou_engine"), ".2f"),
            _num(r.get("miou_drop"), "+.2f"),
            "[bold red]FAIL[/]" if r.get("failures") else "[green]pass[/]")
    return table


def render_iou_table(report: dict[str, Any]) -> Any:
    """Per-class IoU between the PyTorch and the engine argmax masks, one row per size."""
    from rich import box
    from rich.table import Table

    classes = report.get("classes") or []
    k = max((len(r["iou_between"]) for r in report["sizes"]), default=0)
    table = Table(title="IoU between the PyTorch and engine masks", box=box.SIMPLE_HEAD)
    table.add_column("size")
    for i in range(k):
        table.add_column(str(classes[i]) if i < len(classes) else str(i), justify="right")
    for r in report["sizes"]:
        table.add_row("x".join(map(str, r["size"])),
                      *(_num(v, ".4f") for v in r["iou_between"]))
    return table


def print_report(report: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = console or Console()
    console.print(render_table(report))
    console.print(render_iou_table(report))
    for r in report["sizes"]:
        for f in r.get("failures", []):
            console.print(f"[bold red]fail[/] {escape(f)}", highlight=False)
    verdict = "[green]parity OK[/]" if report["passed"] else "[bold red]parity FAILED[/]"
    console.print(verdict)


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    return write_json_atomic(path, {"schema_version": VERIFY_SCHEMA_VERSION, **report})
