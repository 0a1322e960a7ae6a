"""What `segdeploy predict` reports about a folder: per image its size, time and class
shares (`--json`), and the images that failed, listed at the end (exit code 1 when any did)
so that one bad file neither stops a folder nor passes unnoticed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from segdeploy.errors import InputError


def image_record(src: Path, dst: Path, mask: Any, seconds: float,
                 num_classes: int) -> dict[str, Any]:
    """One written mask: the image, the mask file, H x W, seconds, share of each class id."""
    import numpy as np

    counts = np.bincount(np.asarray(mask).ravel(), minlength=num_classes)
    return {"image": str(src), "mask": str(dst), "size": [int(mask.shape[0]),
                                                          int(mask.shape[1])],
            "seconds": round(float(seconds), 4),
            "class_shares": [round(float(c) / max(int(counts.sum()), 1), 6) for c in counts]}


def finish_report(records: list[dict[str, Any]], failures: list[tuple[Path, str]],
                  json_path: str | None, classes: list[str], console: Any) -> None:
    """Write --json, list the failures; InputError (exit 1) when any image failed."""
    if json_path:
        from segdeploy.atomic import write_json_atomic

        write_json_atomic(json_path, {"classes": classes, "images": records,
                                      "failures": [{"image": str(p), "error": why}
                                                   for p, why in failures]})
        console.print(f"report written to {json_path}", highlight=False)
    if not failures:
        return
    for path, why in failures:
        console.print(f"[yellow]failed[/] {path}: {why}", highlight=False)
    raise InputError(f"{len(failures)} of {len(failures) + len(records)} images could not be "
                     f"segmented (listed above; the others' masks are written)",
                     fix="fix or remove those files and run again")
