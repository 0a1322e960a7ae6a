"""Result records of a benchmark run: what the harness produces and the reports consume."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from segdeploy.bench.timing import LatencyStats, speedups
from segdeploy.dims import format_dims

#: the row speed-ups are relative to, when it ran
SPEEDUP_BASELINE = "onnxruntime fp32"

BENCH_SCHEMA_VERSION = 1


def shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return format_dims(shape)


@dataclass
class BackendResult:
    """One backend measured at one input shape."""

    backend: str
    shape: tuple[int, ...]
    stats: LatencyStats
    samples_ms: list[float]
    #: per-phase statistics where the backend can split its time (TensorRT: h2d, compute, d2h)
    phases: dict[str, LatencyStats] = field(default_factory=dict)
    #: what ran: precision, provider, engine file, threads, CUDA graphs...
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: slowest mean / this mean among the backends at this shape (1.0 = the slowest)
    speedup: float = 1.0

    def to_dict(self, *, with_samples: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend, "shape": list(self.shape), **self.stats.to_dict(),
            "speedup": self.speedup, "info": self.info, "warnings": self.warnings,
            "phases": {k: v.to_dict() for k, v in self.phases.items()},
        }
        if with_samples:
            out["samples_ms"] = self.samples_ms
        return out


@dataclass
class BenchReport:
    """Everything one `segdeploy bench` run measured, plus the machine it ran on."""

    environment: dict[str, Any]
    settings: dict[str, Any]
    results: list[BackendResult] = field(default_factory=list)
    #: backends that were asked for but could not run, with the reason
    skipped: dict[str, str] = field(default_factory=dict)

    def shapes(self) -> list[tuple[int, ...]]:
        seen: list[tuple[int, ...]] = []
        for r in self.results:
            if r.shape not in seen:
                seen.append(r.shape)
        return seen

    def fill_speedups(self) -> None:
        """Speed-up of each backend over a named baseline at the same shape: ONNX Runtime
        FP32 on the CPU when it ran (what every CPU path is judged against), else the
        slowest row; `settings["speedup_baseline"]` says which."""
        named = None
        for shape in self.shapes():
            rows = [r for r in self.results if r.shape == shape]
            base = next((str(i) for i, r in enumerate(rows)
                         if r.backend == SPEEDUP_BASELINE), None)
            named = named or (SPEEDUP_BASELINE if base is not None else None)
            ratios = speedups({str(i): r.stats.mean_ms for i, r in enumerate(rows)}, base)
            for i, r in enumerate(rows):
                r.speedup = ratios[str(i)]
        self.settings["speedup_baseline"] = named or "the slowest backend"

    def to_dict(self, *, with_samples: bool = True) -> dict[str, Any]:
        return {"schema_version": BENCH_SCHEMA_VERSION, "environment": self.environment,
                "settings": self.settings, "skipped": self.skipped,
                "results": [r.to_dict(with_samples=with_samples) for r in self.results]}
