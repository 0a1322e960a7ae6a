"""Run several backends at several shapes, with a progress bar, into one BenchReport."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segdeploy.artifacts import PLAN_SUFFIXES, is_onnx, is_plan
from segdeploy.bench.backends import (
    BenchBackend,
    OnnxRuntimeBackend,
    PyTorchBackend,
    SegmenterBackend,
    Shape,
)
from segdeploy.bench.environment import collect_environment
from segdeploy.bench.interleave import measure_round_robin
from segdeploy.bench.results import BackendResult, BenchReport, shape_text
from segdeploy.bench.timing import check_loop_settings, summarize, trust_warnings
from segdeploy.dims import parse_dims
from segdeploy.errors import DeviceError, MissingDependencyError, SegdeployError, UsageError

BACKEND_NAMES = ("pytorch", "onnxruntime", "openvino", "segmenter", "tensorrt")


def parse_shape(text: str, channels: int) -> Shape:
    """'1x3x256x256' (NxCxHxW) or '256x256' (HxW, batch 1, the model's channels)."""
    dims = parse_dims(text, ranks=(4, 2), what="--shape")
    if len(dims) == 2:
        dims = (1, channels, *dims)
    return dims  # type: ignore[return-value]


def plan_backends(engines: Sequence[str | Path], checkpoint: str | Path | None,
                  names: Sequence[str] | None, *, threads: int | None = None,
                  cuda_graphs: Sequence[bool] = (False, True),
                  openvino_precisions: Sequence[str] | None = None
                  ) -> tuple[list[BenchBackend], dict[str, str]]:
    """The backends to run for these files, and those asked for that cannot run (with why).

    names=None means every backend these files allow; an explicit name that no file allows
    is a UsageError.
    """
    wanted = list(names) if names else list(BACKEND_NAMES)
    unknown = [n for n in wanted if n not in BACKEND_NAMES]
    if unknown:
        raise UsageError(f"unknown backend {unknown[0]!r}", expected=", ".join(BACKEND_NAMES))
    backends: list[BenchBackend] = []
    skipped: dict[str, str] = {}
    if "pytorch" in wanted:
        if checkpoint is not None:
            backends.append(PyTorchBackend(checkpoint, threads=threads))
        elif names:
            raise UsageError("--backend pytorch needs the model's weights",
                             fix="add --checkpoint MODEL.pt")
    onnx = [Path(e) for e in engines if is_onnx(e)]
    plans = [Path(e) for e in engines if is_plan(e)]
    other = [str(e) for e in engines if Path(e) not in onnx + plans]
    if other:
        raise UsageError(f"cannot tell the engine type of {other[0]}",
                         expected=f".onnx or one of {', '.join(PLAN_SUFFIXES)}")
    for path in onnx:
        if "onnxruntime" in wanted:
            backends.append(OnnxRuntimeBackend(path, threads=threads))
        if "openvino" in wanted:
            from segdeploy.bench.openvino import OpenVINOBackend, default_precisions

            backends.extend(OpenVINOBackend(path, precision=p, threads=threads)
                            for p in (openvino_precisions or default_precisions()))
        if "segmenter" in wanted:
            backends.append(SegmenterBackend(path, threads=threads))
    if "tensorrt" in wanted and not plans and names:
        skipped["tensorrt"] = "needs a TensorRT plan: build one with `segdeploy build MODEL.onnx`"
    for path in plans:
        if "tensorrt" in wanted:
            from segdeploy.bench.tensorrt import TensorRTBackend

            backends.extend(TensorRTBackend(path, cuda_graph=g) for g in cuda_graphs)
        if "segmenter" in wanted:
            backends.append(SegmenterBackend(path))
    if not backends:
        raise UsageError("nothing to benchmark",
                         expected="--engine MODEL.onnx|.plan and/or --checkpoint MODEL.pt "
                                  "matching the --backend choices")
    return backends, skipped


def run_bench(backends: Sequence[BenchBackend], shapes: Sequence[Shape], *, warmup: int = 5,
              iterations: int | None = None, duration: float | None = None,
              min_iterations: int = 1, threads: int | None = None, strict: bool = False,
              progress: bool = True, settings: dict[str, Any] | None = None,
              skip_failures: bool = False, interleave: bool = True) -> BenchReport:
    """Open every backend, time them at every shape, close them; collect the environment.

    With `interleave` (the default), backends that time through `prepare` run round-robin,
    one iteration each in turn (bench/interleave.py); backends with their own `measure`
    (TensorRT phase timing) run one after the other. A backend that cannot open (missing
    library, no GPU) is skipped with its reason unless `strict`, in which case its error
    propagates. With `skip_failures` (batch scripts), a SegdeployError while measuring one
    shape is recorded in `skipped` instead of raised.
    """
    check_loop_settings(warmup, iterations, duration)
    if iterations is None and duration is None:
        iterations = 50
    results: list[BackendResult] = []
    skipped: dict[str, str] = {}
    opened: list[BenchBackend] = []
    plan = (warmup, iterations, duration, min_iterations)
    try:
        for backend in backends:
            try:
                backend.open()
                opened.append(backend)
            except (MissingDependencyError, DeviceError) as exc:
                backend.close()
                if strict:
                    raise
                skipped[backend.name] = str(exc)
        together = [b for b in opened if interleave and
                    type(b).measure is BenchBackend.measure]
        alone = [b for b in opened if b not in together]
        with _progress(progress) as bar:
            if len(together) > 1:
                for shape in shapes:
                    results.extend(_round_robin(together, shape, bar, plan, skipped,
                                                skip_failures))
            else:
                alone = together + alone
            for backend in alone:
                for shape in shapes:
                    try:
                        results.append(_one(backend, shape, bar, *plan))
                    except SegdeployError as exc:
                        if not skip_failures:
                            raise
                        skipped[f"{backend.name} {shape_text(shape)}"] = str(exc)
    finally:
        for backend in opened:
            backend.close()
    report = BenchReport(
        environment=collect_environment(threads),
        settings={"warmup": warmup, "iterations": iterations, "duration_s": duration,
                  "threads": threads, "shapes": [list(s) for s in shapes],
                  "interleaved": interleave, **(settings or {})},
        results=results, skipped=skipped)
    report.fill_speedups()
    return report


def _round_robin(backends: list[BenchBackend], shape: Shape, bar: Any,
                 plan: tuple[int, int | None, float | None, int], skipped: dict[str, str],
                 skip_failures: bool) -> list[BackendResult]:
    """Time every backend at one shape, one iteration of each in turn."""
    warmup, iterations, duration, min_iterations = plan
    ready: list[tuple[BenchBackend, Any]] = []
    for backend in backends:
        try:
            ready.append((backend, backend.prepare(shape)))
        except SegdeployError as exc:
            if not skip_failures:
                raise
            skipped[f"{backend.name} {shape_text(shape)}"] = str(exc)
    total = float(iterations) if iterations is not None else float(duration or 1.0)
    task = (bar.add_task(f"{len(ready)} backends round-robin {shape_text(shape)}", total=total)
            if bar is not None else None)

    def step(i: int, spent: float) -> None:
        if bar is not None:
            bar.update(task, completed=i if iterations is not None else min(spent, total))

    all_samples = measure_round_robin([fn for _, fn in ready], warmup=warmup,
                                      iterations=iterations, duration=duration,
                                      min_iterations=min_iterations, on_round=step)
    out = []
    for (backend, _), samples in zip(ready, all_samples, strict=True):
        stats = summarize(samples, batch=shape[0])
        out.append(BackendResult(backend=backend.name, shape=tuple(shape), stats=stats,
                                 samples_ms=[float(v) * 1e3 for v in samples], phases={},
                                 info={**backend.info(), "interleaved": True},
                                 warnings=trust_warnings(stats)))
    return out


def _one(backend: BenchBackend, shape: Shape, bar: Any, warmup: int, iterations: int | None,
         duration: float | None, min_iterations: int) -> BackendResult:
    label = f"{backend.name} {shape_text(shape)}"
    total = float(iterations) if iterations is not None else float(duration or 1.0)
    task = bar.add_task(label, total=total) if bar is not None else None

    def step(i: int, spent: float) -> None:
        if bar is not None:
            bar.update(task, completed=i if iterations is not None else min(spent, total))

    samples, phases = backend.measure(shape, warmup=warmup, iterations=iterations,
                                      duration=duration, on_step=step,
                                      min_iterations=min_iterations)
    if bar is not None:
        bar.update(task, completed=total)
    stats = summarize(samples, batch=shape[0])
    info = backend.info()
    warnings = trust_warnings(stats)
    if isinstance(info.get("phases"), str):
        warnings.append(info["phases"])
    return BackendResult(backend=backend.name, shape=tuple(shape), stats=stats,
                         samples_ms=[float(v) * 1e3 for v in samples],
                         phases={k: summarize(v, batch=shape[0]) for k, v in phases.items()},
                         info=info, warnings=warnings)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _progress(enabled: bool) -> Any:
    """A rich progress bar on stderr (hidden when stderr is not a terminal and not forced)."""
    if not enabled:
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)
