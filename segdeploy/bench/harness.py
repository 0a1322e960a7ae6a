"""Run several backends at several shapes, with a progress bar, into one BenchReport."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segdeploy.bench.backends import (
    BenchBackend,
    OnnxRuntimeBackend,
    PyTorchBackend,
    RunnerBackend,
    SegmenterBackend,
    Shape,
)
from segdeploy.bench.environment import collect_environment
from segdeploy.bench.results import BackendResult, BenchReport, shape_text
from segdeploy.bench.timing import check_loop_settings, summarize, trust_warnings
from segdeploy.dims import parse_dims
from segdeploy.errors import DeviceError, MissingDependencyError, SegdeployError, UsageError
from segdeploy.interleave import measure_round_robin

#: bench-only entries around the runtime's backend table: the PyTorch baseline and
#: Segmenter.predict end to end
BASELINE, END_TO_END = "pytorch", "segmenter"


def bench_backend_names() -> tuple[str, ...]:
    """What `--backend` takes: the runtime's table (runtime/backends.py) plus the two above."""
    from segdeploy.runtime.backends import backend_names

    return (BASELINE, *backend_names(), END_TO_END)


def parse_shape(text: str, channels: int) -> Shape:
    """'1x3x256x256' (NxCxHxW) or '256x256' (HxW, batch 1, the model's channels)."""
    dims = parse_dims(text, ranks=(4, 2), what="--shape")
    if len(dims) == 2:
        return (1, channels, dims[0], dims[1])
    return (dims[0], dims[1], dims[2], dims[3])


@dataclass(frozen=True)
class BenchOptions:
    """Settings for the backends bench builds: CPU threads, TensorRT CUDA graphs on/off,
    OpenVINO precision hints (None: what the CPU runs natively)."""

    threads: int | None = None
    cuda_graphs: tuple[bool, ...] = (False, True)
    openvino_precisions: tuple[str, ...] | None = None


def _openvino(path: Path, opts: BenchOptions) -> list[BenchBackend]:
    from segdeploy.bench.openvino import OpenVINOBackend, default_precisions

    return [OpenVINOBackend(path, precision=p, threads=opts.threads)
            for p in (opts.openvino_precisions or default_precisions())]


def _tensorrt(path: Path, opts: BenchOptions) -> list[BenchBackend]:
    from segdeploy.bench.tensorrt import TensorRTBackend

    return [TensorRTBackend(path, cuda_graph=g) for g in opts.cuda_graphs]


#: backends that bench times in their own way (precision sweeps, phases, CUDA graphs); any
#: other row of the runtime table is timed by RunnerBackend
SPECIALISED: dict[str, Callable[[Path, BenchOptions], list[BenchBackend]]] = {
    "onnxruntime": lambda path, opts: [OnnxRuntimeBackend(path, threads=opts.threads)],
    "openvino": _openvino,
    "tensorrt": _tensorrt,
}


@dataclass(frozen=True)
class LoopPlan:
    """How long each backend runs at each shape: warm-up, then a count or a duration."""

    warmup: int
    iterations: int | None
    duration: float | None
    min_iterations: int = 1

    @property
    def total(self) -> float:
        """The progress bar's total: iterations, or seconds."""
        return float(self.iterations) if self.iterations is not None else float(
            self.duration or 1.0)


def plan_backends(engines: Sequence[str | Path], checkpoint: str | Path | None,
                  names: Sequence[str] | None, options: BenchOptions | None = None
                  ) -> tuple[list[BenchBackend], dict[str, str]]:
    """The backends to run for these files, and those asked for that cannot run (with why).

    names=None means every backend these files allow (segmenter only for files with a card:
    the README promises bench needs no metadata); an explicit name that no file allows
    is a UsageError.
    """
    from segdeploy.runtime.backends import backends_opening, get_backend

    opts = options or BenchOptions()
    known = bench_backend_names()
    wanted = list(names) if names else list(known)
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise UsageError(f"unknown backend {unknown[0]!r}", expected=", ".join(known))
    backends: list[BenchBackend] = []
    skipped: dict[str, str] = {}
    if BASELINE in wanted:
        if checkpoint is not None:
            backends.append(PyTorchBackend(checkpoint, threads=opts.threads))
        elif names:
            raise UsageError("--backend pytorch needs the model's weights",
                             fix="add --checkpoint MODEL.pt")
    files = [Path(e) for e in engines]
    other = [str(p) for p in files if not backends_opening(p)]
    if other:
        from segdeploy.runtime.backends import all_suffixes

        raise UsageError(f"cannot tell the engine type of {other[0]}",
                         expected=f"a file ending in {', '.join(all_suffixes())}")
    for path in files:
        for spec in backends_opening(path):
            if spec.name in wanted:
                make = SPECIALISED.get(spec.name)
                backends.extend(make(path, opts) if make else
                                [RunnerBackend(path, backend=spec.name, threads=opts.threads)])
        if END_TO_END in wanted:
            why = None if names else _needs_card(path)
            if why:  # the default set: time what runs without a card, say what was left out
                skipped[END_TO_END + (f" {path.name}" if len(files) > 1 else "")] = why
            else:
                backends.append(SegmenterBackend(path, threads=opts.threads))
    for name in (n for n in wanted if names and n not in (BASELINE, END_TO_END)):
        spec = get_backend(name)
        if not any(spec.opens(p) for p in files):
            how = (": build one with `segdeploy build MODEL.onnx`" if spec.name == "tensorrt"
                   else "")
            skipped[spec.name] = (f"needs a {' / '.join(spec.suffixes)} file"
                                  f" ({spec.summary}){how}")
    if not backends:
        raise UsageError("nothing to benchmark",
                         expected="--engine MODEL.onnx|.plan and/or --checkpoint MODEL.pt "
                                  "matching the --backend choices")
    return backends, skipped


def _needs_card(path: Path) -> str | None:
    """Why Segmenter cannot time `path` (it has no segdeploy card), or None."""
    from segdeploy.artifacts import read_export_info
    from segdeploy.errors import ArtifactError

    try:
        read_export_info(path)
    except ArtifactError:
        return (f"{path.name} has no segdeploy metadata (classes, mean/std), which Segmenter "
                f"needs; `segdeploy card {path.name} --classes ... --mean ... --std ...` "
                "gives it one")
    return None


def run_bench(backends: Sequence[BenchBackend], shapes: Sequence[Shape], *, warmup: int = 5,
              iterations: int | None = None, duration: float | None = None,
              min_iterations: int = 1, threads: int | None = None, strict: bool = False,
              progress: bool = True, settings: dict[str, Any] | None = None,
              skip_failures: bool = False, interleave: bool = True) -> BenchReport:
    """Open every backend, time them at every shape, close them; collect the environment.

    With `interleave` (the default), backends that time through `prepare` run round-robin,
    one iteration each in turn (segdeploy/interleave.py); backends with their own `measure`
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
    plan = LoopPlan(warmup, iterations, duration, min_iterations)
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
                        results.append(_one(backend, shape, bar, plan))
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


def _stepper(bar: Any, label: str, plan: LoopPlan) -> tuple[Callable[[int, float], None],
                                                             Callable[[], None]]:
    """(on_step, finish) callbacks that move one progress task (no-ops without a bar)."""
    if bar is None:
        return (lambda i, spent: None), (lambda: None)
    task = bar.add_task(label, total=plan.total)

    def step(i: int, spent: float) -> None:
        done = i if plan.iterations is not None else min(spent, plan.total)
        bar.update(task, completed=done)

    return step, lambda: bar.update(task, completed=plan.total)


def _round_robin(backends: list[BenchBackend], shape: Shape, bar: Any,
                 plan: LoopPlan, skipped: dict[str, str],
                 skip_failures: bool) -> list[BackendResult]:
    """Time every backend at one shape, one iteration of each in turn."""
    ready: list[tuple[BenchBackend, Any]] = []
    for backend in backends:
        try:
            ready.append((backend, backend.prepare(shape)))
        except SegdeployError as exc:
            if not skip_failures:
                raise
            skipped[f"{backend.name} {shape_text(shape)}"] = str(exc)
    step, _ = _stepper(bar, f"{len(ready)} backends round-robin {shape_text(shape)}", plan)
    all_samples = measure_round_robin([fn for _, fn in ready], warmup=plan.warmup,
                                      iterations=plan.iterations, duration=plan.duration,
                                      min_iterations=plan.min_iterations, on_round=step)
    out = []
    for (backend, _), samples in zip(ready, all_samples, strict=True):
        stats = summarize(samples, batch=shape[0])
        out.append(BackendResult(backend=backend.name, shape=tuple(shape), stats=stats,
                                 samples_ms=[float(v) * 1e3 for v in samples], phases={},
                                 info={**backend.info(), "interleaved": True},
                                 warnings=trust_warnings(stats)))
    return out


def _one(backend: BenchBackend, shape: Shape, bar: Any, plan: LoopPlan) -> BackendResult:
    step, finish = _stepper(bar, f"{backend.name} {shape_text(shape)}", plan)
    samples, phases = backend.measure(shape, warmup=plan.warmup, iterations=plan.iterations,
                                      duration=plan.duration, on_step=step,
                                      min_iterations=plan.min_iterations)
    finish()
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
