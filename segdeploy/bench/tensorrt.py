"""TensorRT bench backend: end-to-end latency, plus host->device, compute and device->host
times from CUDA events, with CUDA graphs on or off.

The phases come from TensorRTRunner.infer_phases: the runner's own `infer` path with events
recorded between its phases, so graph capture and replay are exactly those of `infer`. The
statistics over the samples stay here (docs/ARCHITECTURE.md: timing lives in bench/).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.bench.backends import BenchBackend, Shape, StepHook, engine_feeds
from segdeploy.bench.timing import check_loop_settings, measure

PHASES = ("h2d", "compute", "d2h")


class TensorRTBackend(BenchBackend):
    """A .plan through segdeploy's TensorRTRunner (host arrays in and out)."""

    def __init__(self, plan: str | Path, *, cuda_graph: bool = False, phases: bool = True) -> None:
        self.plan = Path(plan)
        self.cuda_graph = cuda_graph
        self.want_phases = phases
        self.runner: Any = None
        self.export: Any = None
        self.name = "tensorrt" + (" graphs" if cuda_graph else "")

    def open(self) -> None:
        from segdeploy.runtime import TensorRTRunner
        from segdeploy.runtime.plan_compat import read_plan_manifest

        manifest = read_plan_manifest(self.plan)
        self.export = manifest.export
        self.runner = TensorRTRunner(self.plan, manifest=manifest,
                                     cuda_graph=self.cuda_graph).activate()
        self.name = f"tensorrt {manifest.precision}" + (" graphs" if self.cuda_graph else "")
        self._manifest = manifest

    def _feeds(self, shape: Shape) -> dict[str, np.ndarray]:
        return engine_feeds(self.runner.input_specs(), self.export, shape)

    def prepare(self, shape: Shape) -> Callable[[], object]:
        feeds = self._feeds(shape)
        runner = self.runner
        return lambda: runner.infer(feeds, check=False)

    def info(self) -> dict[str, Any]:
        m = self._manifest
        return {"file": str(self.plan), "precision": m.precision, "cuda_graph": self.cuda_graph,
                "tensorrt_version": m.tensorrt_version, "gpu": m.gpu_name}

    def measure(self, shape: Shape, *, warmup: int, iterations: int | None,
                duration: float | None, on_step: StepHook | None = None,
                min_iterations: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """End-to-end samples, then as many `infer_phases` calls at the same shape (the
        end-to-end loop warmed it up: shapes set and, with graphs, the graph captured)."""
        check_loop_settings(warmup, iterations, duration)
        fn = self.prepare(shape)
        samples = measure(fn, warmup=max(warmup, 1), iterations=iterations, duration=duration,
                          on_step=on_step, min_iterations=min_iterations)
        if not self.want_phases:
            return samples, {}
        return samples, self._phase_samples(shape, len(samples))

    def _phase_samples(self, shape: Shape, n: int) -> dict[str, np.ndarray]:
        """n calls of `infer_phases`: seconds per phase, one row per call."""
        feeds = self._feeds(shape)
        out = np.empty((n, len(PHASES)), dtype=np.float64)
        for i in range(n):
            _, times = self.runner.infer_phases(feeds, check=False)
            out[i] = (times.h2d_ms, times.compute_ms, times.d2h_ms)
        return {phase: out[:, j] / 1e3 for j, phase in enumerate(PHASES)}

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
