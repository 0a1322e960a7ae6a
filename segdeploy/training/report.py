"""Rich tables of ConfusionMatrix.compute() results (no torch: verify and runtime reuse them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

SUMMARY_LABELS = {
    "pixel_accuracy": "pixel accuracy",
    "mean_accuracy": "mean accuracy",
    "mean_iou": "mean IU",
    "fw_iou": "frequency weighted IU",
}


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def metrics_tables(metrics: dict[str, Any], classes: Sequence[str], *, title: str = ""):
    """(summary table, per-class table); n/a marks classes absent from target and prediction."""
    from rich.table import Table

    summary = Table(title=title or None, show_header=True)
    summary.add_column("metric (Long et al. 2015, sec. 5)")
    summary.add_column("value", justify="right")
    for key, label in SUMMARY_LABELS.items():
        summary.add_row(label, _fmt(metrics.get(key)))

    per_class = Table(show_header=True)
    for name, justify in (("id", "right"), ("class", "left"), ("IoU", "right"),
                          ("Dice", "right"), ("accuracy", "right"), ("pixels", "right")):
        per_class.add_column(name, justify=justify)
    n = len(metrics.get("iou", []))
    for i in range(n):
        name = classes[i] if i < len(classes) else f"class_{i}"
        per_class.add_row(str(i), name, _fmt(metrics["iou"][i]), _fmt(metrics["dice"][i]),
                          _fmt(metrics.get("accuracy", [None] * n)[i]),
                          f"{metrics.get('support', [0] * n)[i]:,}")
    return summary, per_class
