"""Parity reports: a rich table per size, pass/fail against the thresholds, and JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segdeploy.atomic import write_json_atomic

VERIFY_SCHEMA_VERSION = 1


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def render_table(report: dict[str, Any]) -> Any:
    """Rows: one per size. Columns: logit errors, agreement, IoU between masks, mIoU vs labels."""
    from rich.table import Table

    th = report["thresholds"]
    classes = report.get("classes") or []
    table = Table(title=f"segdeploy verify: {report['engine_name']} ({report['precision']}) "
                        f"vs PyTorch on {report['data']}",
                  caption=f"pass: agreement >= {th['min_agreement']:g}%"
                          + (f", mIoU drop <= {th['max_miou_drop']:g} points"
                             if th.get("max_miou_drop") is not None else ""),
                  caption_justify="left")
    for name in ("size", "images", "max |err|", "mean |err|", "p99 |err|", "agreement %",
                 "IoU between masks", "mIoU torch", "mIoU engine", "drop", "result"):
        table.add_column(name, justify="left" if name in ("size", "IoU between masks",
                                                           "result") else "right")
    for r in report["sizes"]:
        err = r["abs_error"]
        ious = ", ".join(f"{(classes[i] if i < len(classes) else i)} {_num(v, '.4f')}"
                         for i, v in enumerate(r["iou_between"]))
        ok = not r.get("failures")
        table.add_row(
            "x".join(map(str, r["size"])), str(r["images"]), f"{err['max']:.2e}",
            f"{err['mean']:.2e}", f"{err['p99']:.2e}", f"{r['agreement']:.3f}", ious,
            _num(r.get("miou_reference"), ".2f"), _num(r.get("miou_engine"), ".2f"),
            _num(r.get("miou_drop"), "+.2f"), "[green]pass[/]" if ok else "[bold red]FAIL[/]")
    return table


def print_report(report: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console

    console = console or Console()
    console.print(render_table(report))
    for r in report["sizes"]:
        for f in r.get("failures", []):
            console.print(f"[bold red]fail[/] {f}", highlight=False)
    verdict = "[green]parity OK[/]" if report["passed"] else "[bold red]parity FAILED[/]"
    console.print(verdict)


def write_json(report: dict[str, Any], path: str | Path) -> Path:
    return write_json_atomic(path, {"schema_version": VERIFY_SCHEMA_VERSION, **report})
