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

from segdeploy.errors import UsageError

#: bytes per input pixel of an untiled prediction (measured ~210 B/px, rounded up)
DEFAULT_BYTES_PER_PIXEL = 256
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
