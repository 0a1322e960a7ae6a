"""The TensorRT calls of `segdeploy build`: parse, configure, build, inspect.

`tensorrt` is never imported here: callers pass the module in as `trt`. Names that exist only
in some TensorRT versions are confined to functions marked `@trt_only(...)`, and
tests/test_tensorrt_api_contract.py checks every TensorRT name used in this file against the
real 10.x and 11.x bindings. Objects keep the variable names that test knows (builder,
network, parser, config, profile, runtime, engine, context, inspector, timing_cache).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segdeploy.atomic import write_bytes_atomic
from segdeploy.engine.precision import (
    PrecisionChoice,
    TrtVersion,
    require_fp16_layers,
    summarize_engine_layers,
    trt_only,
)
from segdeploy.engine.profiles import TRT_DTYPES, IOSpec, ShapeProfile
from segdeploy.errors import BuildError, DeviceError


@dataclass
class EngineSettings:
    """The TensorRT side of a build request."""

    input_name: str
    profiles: list[ShapeProfile]
    precision: str = "fp16"
    workspace_bytes: int | None = None
    timing_cache: Path | None = None
    version_compatible: bool = False
    hardware_compatibility: str | None = None
    optimization_level: int | None = None
    show_progress: bool = True
    verbose: bool = False


@dataclass
class BuiltEngine:
    plan: bytes
    io: list[IOSpec]
    profiles: list[ShapeProfile]
    layers: dict[str, Any] = field(default_factory=dict)


class BuildProgress:
    """Turns IProgressMonitor callbacks into rich progress bars; nested phases are indented.

    Callbacks run inside TensorRT's build and must never raise: errors are swallowed, and a
    Ctrl-C there sets `cancelled`, which makes the next `step_complete` stop the build.
    """

    def __init__(self, progress: Any = None, *, max_depth: int = 3):
        self.progress = progress
        self.max_depth = max_depth
        self.phases: dict[str, tuple[Any, int]] = {}  # name -> (rich task id or None, depth)
        self.cancelled = False

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        try:
            depth = 0 if parent_phase is None else \
                self.phases.get(parent_phase, (None, self.max_depth))[1] + 1
            task = None
            if self.progress is not None and depth < self.max_depth:
                task = self.progress.add_task("  " * depth + phase_name, total=max(num_steps, 1))
            self.phases[phase_name] = (task, depth)
        except KeyboardInterrupt:
            self.cancelled = True
        except Exception:  # noqa: BLE001 - a display problem must not break the build
            pass

    def step_complete(self, phase_name: str, step: int) -> bool:
        try:
            task = self.phases.get(phase_name, (None, 0))[0]
            if task is not None:
                self.progress.update(task, completed=step + 1)
        except KeyboardInterrupt:
            self.cancelled = True
        except Exception:  # noqa: BLE001
            pass
        return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        try:
            task, depth = self.phases.pop(phase_name, (None, 0))
            if task is None:
                return
            if depth == 0:
                total = self.progress.tasks[self._index(task)].total
                self.progress.update(task, completed=total)
            else:
                self.progress.remove_task(task)
        except KeyboardInterrupt:
            self.cancelled = True
        except Exception:  # noqa: BLE001
            pass

    def _index(self, task: Any) -> int:
        return [t.id for t in self.progress.tasks].index(task)


def build_plan(trt: Any, version: TrtVersion, choice: PrecisionChoice, settings: EngineSettings,
               onnx_input: Path | bytes) -> BuiltEngine:
    """Parse, configure and build; then inspect the engine (FP16 layers, I/O, profiles)."""
    with ExitStack() as stack:
        progress = stack.enter_context(_progress_display(settings.show_progress))
        log_sink = _make_logger(trt, progress, settings.verbose)
        builder = trt.Builder(log_sink)
        if builder is None:
            raise DeviceError("TensorRT could not create a builder (no usable GPU?)",
                              fix="check nvidia-smi. " + _log_tail(log_sink))
        network = builder.create_network(_network_flags(trt, choice))
        parser = trt.OnnxParser(network, log_sink)  # must outlive the build (owns weights)
        parse_onnx(trt, version, parser, onnx_input)
        network_fp16 = _network_fp16_layers(trt, network) if choice.strongly_typed else 0
        config = builder.create_builder_config()
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # for the inspector
        if settings.workspace_bytes:
            config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, settings.workspace_bytes)
        if "FP16" in choice.builder_flags:
            _set_fp16_flag_trt8(trt, config)
        if settings.version_compatible:
            config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        if settings.hardware_compatibility == "same-cc":
            _set_same_cc_trt10_9(trt, config)
        elif settings.hardware_compatibility == "ampere+":
            config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
        if settings.optimization_level is not None:
            config.builder_optimization_level = settings.optimization_level
        for shape_profile in settings.profiles:
            profile = builder.create_optimization_profile()
            profile.set_shape(settings.input_name, *shape_profile.shapes().values())
            if config.add_optimization_profile(profile) < 0:
                raise BuildError(f"TensorRT rejected profile {shape_profile.describe()}",
                                 fix=_log_tail(log_sink) or "rerun with --verbose")
        timing_cache = _attach_timing_cache(config, settings.timing_cache, progress)
        tracker = BuildProgress(progress)
        monitor = _attach_progress_monitor(trt, config, tracker) if version.major >= 10 else None
        task = None
        if monitor is None and progress is not None:
            task = progress.add_task(f"Building engine (TensorRT {version} reports no steps)",
                                     total=None)
        serialized = builder.build_serialized_network(network, config)
        if task is not None:
            progress.remove_task(task)
        if serialized is None or tracker.cancelled:
            raise BuildError("TensorRT failed to build the engine" +
                             (" (cancelled)" if tracker.cancelled else ""),
                             fix=_log_tail(log_sink) or "rerun with --verbose")
        plan_bytes = bytes(memoryview(serialized))
        if settings.timing_cache is not None and timing_cache is not None:
            timing_cache = config.get_timing_cache()
            write_bytes_atomic(settings.timing_cache, bytes(memoryview(timing_cache.serialize())))
        del monitor, parser
        return inspect_plan(trt, log_sink, plan_bytes, settings, network_fp16_layers=network_fp16)


def _network_fp16_layers(trt: Any, network: Any) -> int:
    """Compute layers of a parsed strongly typed network that output float16 (casts,
    constants and shuffles excluded: they move data, they do not compute in FP16)."""
    movers = {trt.LayerType.CAST, trt.LayerType.CONSTANT, trt.LayerType.SHUFFLE}
    count = 0
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.type in movers:
            continue
        if any(layer.get_output(j).dtype == trt.DataType.HALF for j in range(layer.num_outputs)):
            count += 1
    return count


def inspect_plan(trt: Any, log_sink: Any, plan_bytes: bytes,
                 settings: EngineSettings, *, network_fp16_layers: int = 0) -> BuiltEngine:
    """Deserialize once: I/O, profiles and per-layer precision straight from the engine."""
    runtime = trt.Runtime(log_sink)
    if settings.version_compatible:
        runtime.engine_host_code_allowed = True  # the plan embeds its lean runtime
    engine = runtime.deserialize_cuda_engine(plan_bytes)
    if engine is None:
        raise BuildError("the freshly built plan does not deserialize", fix=_log_tail(log_sink))
    io, profiles = [], []
    for index in range(engine.num_io_tensors):
        name = engine.get_tensor_name(index)
        mode = "input" if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else "output"
        dtype = engine.get_tensor_dtype(name)
        io.append(IOSpec(name, mode, TRT_DTYPES.get(dtype.name, dtype.name.lower()),
                         tuple(engine.get_tensor_shape(name))))
    for index in range(engine.num_optimization_profiles):
        shapes = engine.get_tensor_profile_shape(settings.input_name, index)
        profiles.append(ShapeProfile(*(tuple(s) for s in shapes)))
    context = engine.create_execution_context()
    if context is None:
        raise DeviceError("TensorRT could not create an execution context",
                          fix="free GPU memory. " + _log_tail(log_sink))
    context.set_input_shape(settings.input_name, settings.profiles[0].opt)
    inspector = engine.create_engine_inspector()
    inspector.execution_context = context  # concrete shapes, so formats are not "N/A"
    summary = summarize_engine_layers(
        inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    del inspector, context, engine
    summary.network_fp16_layers = network_fp16_layers
    require_fp16_layers(summary, settings.precision)
    return BuiltEngine(plan_bytes, io, profiles, summary.to_dict())


def _network_flags(trt: Any, choice: PrecisionChoice) -> int:
    if not choice.strongly_typed:
        return _explicit_batch_flag_trt8(trt)
    if "STRONGLY_TYPED" in choice.network_flags:
        return _strongly_typed_flag_trt10(trt)
    return 0  # TensorRT >= 11: every network is strongly typed


@trt_only(below=(10, 0))
def _explicit_batch_flag_trt8(trt: Any) -> int:
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


@trt_only(below=(10, 0))
def _set_fp16_flag_trt8(trt: Any, config: Any) -> None:
    config.set_flag(trt.BuilderFlag.FP16)


@trt_only(min_version=(10, 0), below=(11, 0))
def _strongly_typed_flag_trt10(trt: Any) -> int:
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


@trt_only(min_version=(10, 9))
def _set_same_cc_trt10_9(trt: Any, config: Any) -> None:
    config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY


def parse_onnx(trt: Any, version: TrtVersion, parser: Any, onnx_input: Path | bytes) -> None:
    """Parse from the file (external weights resolve) or bytes; errors name their nodes."""
    if isinstance(onnx_input, Path):
        ok = parser.parse_from_file(str(onnx_input))
    else:
        ok = parser.parse(onnx_input)
    if ok and parser.num_errors == 0:
        return
    lines = []
    for index in range(parser.num_errors):
        parser_error = parser.get_error(index)
        where = (_parser_error_node_trt10(trt, parser_error) if version.major >= 10
                 else f"node #{parser_error.node()}")
        lines.append(f"{where}: {parser_error.desc()}")
    raise BuildError("TensorRT's ONNX parser rejected the model: " +
                     ("; ".join(lines) or "no detail given"),
                     expected="operators TensorRT supports (opset <= 17 on TensorRT 8.x)",
                     fix="re-export with `segdeploy export` (--opset 17 for TensorRT 8.x)")


@trt_only(min_version=(10, 0))
def _parser_error_node_trt10(trt: Any, parser_error: Any) -> str:
    name = parser_error.node_name() or f"#{parser_error.node()}"
    return f"node {name} ({parser_error.node_operator() or '?'})"


def _attach_timing_cache(config: Any, path: Path | None, progress: Any) -> Any:
    """Load the timing cache if the file exists; a stale or foreign one starts afresh."""
    data = path.read_bytes() if path is not None and path.is_file() else b""
    try:
        timing_cache = config.create_timing_cache(data)
        if timing_cache is not None and config.set_timing_cache(timing_cache, False):
            return timing_cache
    except Exception:  # noqa: BLE001 - a corrupt cache file: start afresh
        pass
    if data:
        _say(progress, f"timing cache {path} does not fit this TensorRT/GPU; starting a new one")
    timing_cache = config.create_timing_cache(b"")
    if timing_cache is not None:
        config.set_timing_cache(timing_cache, False)
    return timing_cache


@trt_only(min_version=(10, 0))
def _attach_progress_monitor(trt: Any, config: Any, tracker: BuildProgress) -> Any:
    class _Monitor(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            tracker.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            return tracker.step_complete(phase_name, step)

        def phase_finish(self, phase_name: str) -> None:
            tracker.phase_finish(phase_name)

    monitor = _Monitor()
    config.progress_monitor = monitor
    return monitor  # the caller keeps it alive until the build returns


def _make_logger(trt: Any, progress: Any, verbose: bool) -> Any:
    """A TensorRT logger that prints warnings (everything with --verbose), keeps errors."""
    shown = int(trt.ILogger.Severity.VERBOSE if verbose else trt.ILogger.Severity.WARNING)
    errors = int(trt.ILogger.Severity.ERROR)

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            level = int(severity)
            if level <= errors:
                self.errors = (self.errors + [msg])[-10:]
            if level <= shown:
                _say(progress, f"TensorRT: {msg}")

    return _Logger()


def _log_tail(log_sink: Any, count: int = 5) -> str:
    errors = getattr(log_sink, "errors", [])
    return ("TensorRT said: " + " | ".join(errors[-count:])) if errors else ""


def _say(progress: Any, text: str) -> None:
    from rich.console import Console
    from rich.text import Text

    console = progress.console if progress is not None else Console(stderr=True)
    console.print(Text(text, style="dim"))


@contextmanager
def _progress_display(enabled: bool) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        yield progress
