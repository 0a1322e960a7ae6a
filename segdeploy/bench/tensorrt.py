"""TensorRT bench backend: end-to-end latency, plus host->device, compute and device->host
times from CUDA events, with CUDA graphs on or off.

The runtime's TensorRTRunner has no timing hooks (timing lives in bench/, DESIGN.md), so the
phase loop drives the runner's per-thread state (its stream, buffers and `_execute`) between
CUDA events. If a future runner changes those internals, the phases are left out with a
warning and the end-to-end numbers stay.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.bench.backends import BenchBackend, Shape, StepHook, engine_feeds
from segdeploy.bench.timing import check_plan, measure

PHASES = ("h2d", "compute", "d2h")


class CudaEvents:
    """A set of CUDA events recorded on one stream; elapsed times between consecutive ones."""

    def __init__(self, count: int) -> None:
        from segdeploy.runtime import cuda_memory as cm

        self._cm = cm
        rt = cm.cudart()
        self.events = [cm.check(rt.cudaEventCreate(), "cudaEventCreate") for _ in range(count)]

    def record(self, i: int, stream: Any) -> None:
        self._cm.check(self._cm.cudart().cudaEventRecord(self.events[i], stream.handle),
                       "cudaEventRecord")

    def elapsed_ms(self) -> list[float]:
        rt = self._cm.cudart()
        return [float(self._cm.check(rt.cudaEventElapsedTime(a, b), "cudaEventElapsedTime"))
                for a, b in zip(self.events[:-1], self.events[1:], strict=True)]

    def free(self) -> None:
        rt = self._cm.cudart()
        for ev in self.events:
            rt.cudaEventDestroy(ev)
        self.events = []


class TensorRTBackend(BenchBackend):
    """A .plan through segdeploy's TensorRTRunner (host arrays in and out)."""

    def __init__(self, plan: str | Path, *, cuda_graph: bool = False, phases: bool = True) -> None:
        self.plan = Path(plan)
        self.cuda_graph = cuda_graph
        self.want_phases = phases
        self.runner: Any = None
        self.export: Any = None
        self.phase_warning = ""
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

    def prepare(self, shape: Shape) -> Callable[[], object]:
        feeds = engine_feeds(self.runner.input_specs(), self.export, shape)
        runner = self.runner
        return lambda: runner.infer(feeds, check=False)

    def info(self) -> dict[str, Any]:
        m = self._manifest
        out = {"file": str(self.plan), "precision": m.precision, "cuda_graph": self.cuda_graph,
               "tensorrt_version": m.tensorrt_version, "gpu": m.gpu_name}
        if self.phase_warning:
            out["phases"] = self.phase_warning
        return out

    def measure(self, shape: Shape, *, warmup: int, iterations: int | None,
                duration: float | None, on_step: StepHook | None = None,
                min_iterations: int = 1) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        check_plan(warmup, iterations, duration)
        fn = self.prepare(shape)
        samples = measure(fn, warmup=max(warmup, 1), iterations=iterations, duration=duration,
                          on_step=on_step, min_iterations=min_iterations)
        phases: dict[str, np.ndarray] = {}
        if self.want_phases:
            try:
                phases = self._phase_samples(len(samples))
            except (AttributeError, KeyError, TypeError) as exc:
                self.phase_warning = (f"per-phase timing unavailable with this runtime "
                                      f"({type(exc).__name__}: {exc})")
        return samples, phases

    def _phase_samples(self, n: int) -> dict[str, np.ndarray]:
        """Replay the last shape's copies and execution between CUDA events, n times.

        Needs one `infer` at this shape first (the end-to-end loop did it): the context has
        its shapes, the buffers their addresses and, with graphs, the graph is captured.
        """
        from segdeploy.runtime import cuda_memory as cm

        runner = self.runner
        state = runner._state()
        specs = runner.input_specs()
        stream = state.stream
        key = (state.profile, state.shapes, tuple(state.addresses[name] for name in specs))
        copies_in = [(state.device[name].ptr, state.host[name].ptr,
                      _nbytes(state.context.get_tensor_shape(name), runner._io[name][1]))
                     for name in specs]
        outputs = [name for name, (mode, _) in runner._io.items() if mode == "output"]
        copies_out = [(state.host[name].ptr, state.device[name].ptr,
                       _nbytes(state.context.get_tensor_shape(name), runner._io[name][1]))
                      for name in outputs]
        events = CudaEvents(4)
        out = np.empty((n, 3), dtype=np.float64)
        try:
            for i in range(n):
                events.record(0, stream)
                for dst, src, nbytes in copies_in:
                    cm.copy_async(dst, src, nbytes, "htod", stream)
                events.record(1, stream)
                runner._execute(state, key)
                events.record(2, stream)
                for dst, src, nbytes in copies_out:
                    cm.copy_async(dst, src, nbytes, "dtoh", stream)
                events.record(3, stream)
                stream.synchronize()
                out[i] = events.elapsed_ms()
        finally:
            events.free()
        return {phase: out[:, j] / 1e3 for j, phase in enumerate(PHASES)}

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()


def _nbytes(shape: Any, dtype: np.dtype) -> int:
    return int(np.prod([int(d) for d in shape], dtype=np.int64)) * np.dtype(dtype).itemsize
