"""What this machine's CPU is called: benchmarks print it, and quantize names it when INT8
does not pay off here. Core, so every layer can say it the same way."""

from __future__ import annotations

import platform


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux, else platform.processor())."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name") and ":" in line:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
