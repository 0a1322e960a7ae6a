"""Round-robin timing order and CPU extension detection (no timing asserted)."""

from __future__ import annotations

from segdeploy.bench.cpu_features import cpu_class, cpu_extensions, cpu_flags
from segdeploy.interleave import measure_round_robin


def test_round_robin_alternates_and_counts() -> None:
    calls: list[str] = []
    fns = [lambda: calls.append("a"), lambda: calls.append("b")]
    samples = measure_round_robin(fns, warmup=1, iterations=3, duration=None)
    assert calls == ["a", "b"] * 4 and [len(s) for s in samples] == [3, 3]


def test_round_robin_rotate_starts_each_round_one_later() -> None:
    """quantize's INT8-vs-FP32 timing: neither file always runs right after the other."""
    calls: list[str] = []
    fns = [lambda: calls.append("a"), lambda: calls.append("b"), lambda: calls.append("c")]
    samples = measure_round_robin(fns, warmup=0, iterations=4, duration=None, rotate=True)
    assert "".join(calls) == "abc" "bca" "cab" "abc"
    assert [len(s) for s in samples] == [4, 4, 4]


def test_round_robin_duration_waits_for_every_backend() -> None:
    t = [0.0]

    def clock() -> float:
        return t[0]

    def slow() -> None:
        t[0] += 0.3

    def fast() -> None:
        t[0] += 0.1

    a, b = measure_round_robin([slow, fast], warmup=0, iterations=None, duration=1.0,
                               clock=clock)
    assert len(a) == len(b) == 10  # the fast one needs 10 rounds to reach 1 s


def test_cpu_extensions_from_flags(tmp_path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx2 fma avx512f avx512_vnni amx_tile "
                    "amx_bf16\n")
    flags = cpu_flags(str(info))
    ext = cpu_extensions(flags)
    assert ext == ["AVX2", "FMA", "AVX-512F", "AVX-512 VNNI", "AMX-TILE", "AMX-BF16"]
    assert cpu_class(ext) == "amx" and cpu_class(["AVX2"]) == "avx2"
    assert cpu_flags(str(tmp_path / "missing")) == set()
    assert isinstance(cpu_extensions(), list)  # this machine's, whatever it has
