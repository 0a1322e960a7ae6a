"""The CPU's vector and matrix extensions, read from the machine (never assumed).

CPU inference speed depends on them: AVX-512 VNNI / AVX-VNNI speed up INT8, AVX-512 BF16 and
AMX (Intel's tile matrix unit) make OpenVINO pick bf16. Read from /proc/cpuinfo flags.
"""

from __future__ import annotations

from collections.abc import Iterable

#: /proc/cpuinfo flag -> name in reports, in report order
FEATURES = (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512F"),
            ("avx512bw", "AVX-512BW"), ("avx512_vnni", "AVX-512 VNNI"),
            ("avx512_bf16", "AVX-512 BF16"), ("avx512_fp16", "AVX-512 FP16"),
            ("avx_vnni", "AVX-VNNI"), ("amx_tile", "AMX-TILE"), ("amx_bf16", "AMX-BF16"),
            ("amx_int8", "AMX-INT8"), ("amx_fp16", "AMX-FP16"),
            ("asimd", "NEON"), ("sve", "SVE"), ("sve2", "SVE2"))


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The flags of the first CPU listed (x86 'flags', Arm 'Features'); empty if unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key = line.split(":", 1)[0].strip().lower()
                if key in ("flags", "features") and ":" in line:
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_extensions(flags: Iterable[str] | None = None) -> list[str]:
    """Report names of the vector/matrix extensions among `flags` (default: this CPU's)."""
    have = set(cpu_flags() if flags is None else flags)
    return [name for flag, name in FEATURES if flag in have]


def cpu_class(extensions: Iterable[str]) -> str:
    """'amx', 'avx512', 'avx2' or 'other': which speed target of BENCHMARKS.md applies."""
    ext = set(extensions)
    if any(e.startswith("AMX") for e in ext):
        return "amx"
    if "AVX-512F" in ext:
        return "avx512"
    return "avx2" if "AVX2" in ext else "other"
