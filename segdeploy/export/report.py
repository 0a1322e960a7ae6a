"""How an export presents itself: rich tables for people, NAME.parity.json for machines."""

from __future__ import annotations

from typing import Any

from segdeploy.export.findings import Finding
from segdeploy.export.parity import FP16_MIN_AGREEMENT, FP32_RTOL, ParityReport


def _fmt(v: float | None, spec: str = ".2e") -> str:
    return "-" if v is None else format(v, spec)


def parity_table(report: ParityReport) -> Any:
    """A rich Table of every parity row (failures in red)."""
    from rich.table import Table

    caption = (f"gates: fp32 max|d| <= {FP32_RTOL:g} x max(1, max|logit|) and argmax 100% off "
               f"ties; fp16 argmax >= {FP16_MIN_AGREEMENT:.1%} on real images. 'off ties': "
               "pixels whose top-2 logits differ by more than twice the fp32 tolerance")
    table = Table(title="Parity: ONNX Runtime (CPU) vs PyTorch FP32", title_justify="left",
                  caption=caption, caption_justify="left")
    for col, justify in (("graph", "left"), ("inputs", "left"), ("out", "left"),
                         ("max|d|", "right"), ("p99|d|", "right"), ("argmax", "right"),
                         ("off ties", "right"), ("ok", "left")):
        table.add_column(col, justify=justify,  # type: ignore[arg-type]
                         overflow="fold", no_wrap=col != "inputs")
    for r in report.rows:
        result = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "info"}[r.passed]
        table.add_row(r.graph, r.inputs, r.output, _fmt(r.max_abs, ".1e"),
                      _fmt(r.p99_abs, ".1e"), f"{r.argmax_agreement:.3%}",
                      f"{r.argmax_agreement_nontied:.3%}", result)
    return table


def findings_table(findings: list[Finding]) -> Any:
    from rich.table import Table

    table = Table(title="Graph checks", title_justify="left")
    for col in ("level", "check", "message", "fix"):
        table.add_column(col)
    for f in findings:
        level = "[bold red]error[/]" if f.level == "error" else "[yellow]warning[/]"
        table.add_row(level, f.check, f.message, f.fix)
    return table


def fp32_nodes_table(reasons: dict[str, str], limit: int = 20) -> Any:
    from rich.table import Table

    table = Table(title=f"Nodes kept in float32 in the FP16 graph ({len(reasons)})",
                  title_justify="left")
    table.add_column("node")
    table.add_column("reason")
    for name, why in list(reasons.items())[:limit]:
        table.add_row(name, why)
    if len(reasons) > limit:
        table.add_row(f"... {len(reasons) - limit} more", "see fp32_nodes in the ONNX metadata")
    return table


def print_report(console: Any, *, parity: ParityReport, findings: list[Finding],
                 fp32_nodes: dict[str, str] | None, notes: list[str]) -> None:
    """Print everything a person needs to trust (or distrust) the export."""
    if findings:
        console.print(findings_table(findings))
    if fp32_nodes:
        console.print(fp32_nodes_table(fp32_nodes))
    if parity.rows:
        console.print(parity_table(parity))
    for note in [*notes, *parity.notes]:
        console.print(f"[dim]note:[/] {note}", highlight=False)
