"""How much memory an untiled prediction needs, and the budget above which Segmenter tiles.

Untiled, a prediction holds the padded image, the normalised float input, every activation
of the network and the logits at full resolution: about 210 bytes per pixel was measured for
the reference U-Net on ONNX Runtime (a 12000 x 12000 image: ~30 GB, killed by the kernel
without a word). Above the budget, `Segmenter.predict` switches to overlap-tiling, whose
memory is bounded by the tile size. No torch, no psutil: Linux /proc/meminfo or sysconf.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from segdeploy.errors import UsageError

#: bytes per input pixel of an untiled prediction before the model is measured (the reference
#: U-Net needs ~400-430 B/px on ONNX Runtime, FCN-ResNet18 ~600: see measure_bytes_per_pixel)
DEFAULT_BYTES_PER_PIXEL = 256
#: images whose default estimate is within this factor of the budget get the model measured
MEASURE_WITHIN = 8
#: safety margin on a measured figure (arena growth steps, allocator slack)
MEASURED_MARGIN = 1.25
#: the default budget is this share of the memory available when the Segmenter is made
BUDGET_SHARE = 0.5
#: the budget when the available memory cannot be read
FALLBACK_BUDGET = 4 << 30

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class AutoTileNotice(UserWarning):
    """Emitted once per Segmenter when it switches to tiling to stay within its budget."""


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (MemAvailable), None if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def default_budget() -> int:
    avail = available_memory()
    return int(avail * BUDGET_SHARE) if avail else FALLBACK_BUDGET


def parse_bytes(text: str | int) -> int:
    """'2G', '512M', '1.5g', 1000000 -> bytes (binary units)."""
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text).lower())
        if not m:
            raise UsageError(f"memory budget {text!r} is not a size",
                             expected="a number of bytes with an optional unit, e.g. 2G or 512M",
                             fix="write it like --memory-budget 4G")
        value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise UsageError(f"memory budget {text!r} is not positive", expected="e.g. 2G")
    return value


def format_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def resident_bytes() -> int | None:
    """This process's resident memory now (Linux /proc/self/statm), None where unreadable."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def measure_bytes_per_pixel(run: Callable[[int], None], sides: tuple[int, int],
                            host_bytes_per_pixel: float) -> float | None:
    """Bytes per input pixel of an untiled run, measured on this model: resident memory after
    a run at each of two sides (ONNX Runtime keeps its arena, so the growth is the run's
    working memory), the difference per added pixel (fixed costs cancel), plus what our own
    host arrays hold per pixel, times MEASURED_MARGIN. None where memory cannot be read."""
    before = resident_bytes()
    if before is None:
        return None
    grown = []
    for side in sides:
        run(side)
        now = resident_bytes()
        if now is None:
            return None
        grown.append(now)
    small, large = sides
    per_pixel = max(grown[1] - grown[0], 0) / max(large * large - small * small, 1)
    return (per_pixel + host_bytes_per_pixel) * MEASURED_MARGIN
