"""`segdeploy eval --crf`: score the checkpoint's masks again after the dense CRF and print
both rows (mIoU, boundary F, pixel accuracy), so the CRF's effect is seen on one model."""

from __future__ import annotations

import time
from typing import Any

import numpy as np


class CRFScoring:
    """Accumulates, image by image, the masks' scores without and with the CRF."""

    def __init__(self, card: Any, notify: Any) -> None:
        from segdeploy.metrics import BoundaryF, ConfusionMatrix
        from segdeploy.runtime.segmenter_crf import card_or_defaults

        self.params = card_or_defaults(card, notify)
        self.threshold = card.threshold
        k = card.num_classes
        self.cm = ConfusionMatrix(k)
        self.bf = {"without": BoundaryF(k), "with": BoundaryF(k)}
        self.seconds = 0.0
        self.pixels = 0

    def __call__(self, image: np.ndarray, logits: np.ndarray, mask: np.ndarray) -> None:
        from segdeploy.runtime.crf import probabilities, refine_mask

        probs = probabilities(logits, self.threshold)
        self.bf["without"].update(np.argmax(probs, axis=0), mask)
        t0 = time.perf_counter()
        refined = refine_mask(logits, image, self.params, threshold=self.threshold)
        self.seconds += time.perf_counter() - t0
        self.pixels += mask.size
        self.cm.update(refined, mask)
        self.bf["with"].update(refined, mask)

    def rows(self, without: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [("without CRF", {**_summary(without), "boundary_f": self._bf("without")}),
                ("with CRF", {**_summary(self.cm.compute()), "boundary_f": self._bf("with")})]

    def _bf(self, which: str) -> float | None:
        return self.bf[which].compute()["mean"]

    def report(self, console: Any, without: dict[str, Any]) -> dict[str, Any]:
        """Print the two rows; the JSON record of the CRF pass."""
        from rich.table import Table

        table = Table(title=f"dense CRF ({self.params.describe()})")
        for col in ("masks", "mIoU", "boundary F (2 px)", "pixel acc"):
            table.add_column(col, justify="left" if col == "masks" else "right")
        rows = self.rows(without)
        for label, r in rows:
            table.add_row(label, *(_fmt(r[k]) for k in ("mean_iou", "boundary_f",
                                                         "pixel_accuracy")))
        console.print(table)
        per_mp = self.seconds / max(self.pixels / 1e6, 1e-12)
        console.print(f"CRF: {per_mp:.2f} s per megapixel", highlight=False)
        return {"params": self.params.to_dict(), "seconds_per_megapixel": round(per_mp, 3),
                **{label.replace(" ", "_"): r for label, r in rows},
                "metrics_with_crf": self.cm.compute()}


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics.get(k) for k in ("mean_iou", "pixel_accuracy")}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
