"""`segdeploy build`: ONNX -> TensorRT plan + `.plan.json` sidecar, verified before publishing.

Every check that needs no TensorRT (paths, ONNX metadata, profiles, options) runs first, in
`prepare_build`, so mistakes show on any machine. Then tensorrt is imported (lazily), the
precision is chosen from the parsed TensorRT version (build/precision.py), the engine is
built with a timing cache and a progress bar (build/network.py), inspected (FP16 layers must
exist when asked), its I/O and profiles compared with the ONNX, and a smoke inference at each
profile shape compared with ONNX Runtime (build/smoke_parity.py). Only then are the plan and
its manifest renamed into place, both or neither. An engine cache (--cache-dir) skips
identical builds.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segdeploy import __version__
from segdeploy.artifacts import manifest_text, plan_manifest_path, write_plan_manifest
from segdeploy.atomic import atomic_path, check_output_path
from segdeploy.digest import sha256_bytes, sha256_file
from segdeploy.engine.engine_cache import EngineCache, cache_key
from segdeploy.engine.precision import (
    HARDWARE_COMPATIBILITY,
    PRECISIONS,
    PrecisionChoice,
    TrtVersion,
    check_build_options,
    check_hardware_compatibility,
    check_opset,
    check_optimization_level,
    check_output_dtypes,
    check_supported,
    decide_precision,
)
from segdeploy.engine.profiles import (
    InputGeometry,
    IOSpec,
    ShapeProfile,
    default_profile,
    engine_profile_problems,
    io_problems,
    validate_profiles,
)
from segdeploy.engine.smoke_parity import (
    DEFAULT_THRESHOLD,
    check_parity,
    run_parity,
    sample_feeds,
)
from segdeploy.errors import (
    ArtifactError,
    BuildError,
    MissingDependencyError,
    UsageError,
    first_line,
)
from segdeploy.manifest import ExportInfo, PlanManifest
from segdeploy.precision import Precision
from segdeploy.runtime.onnxruntime_runner import OnnxRuntimeRunner

TENSORRT_FIX = ("pip install 'segdeploy[tensorrt]'; on a Jetson TensorRT comes with JetPack: "
                "sudo apt install nvidia-jetpack (or python3-libnvinfer for the Python bindings)")


@dataclass(frozen=True)
class BuildRequest:
    """What the user asked for (the CLI's options, already parsed); never rewritten:
    the precision the build settles on is `PreparedBuild.precision`."""

    onnx_path: Path
    output: Path | None = None
    precision: Precision = Precision.FP16
    profiles: list[ShapeProfile] | None = None
    workspace_bytes: int | None = None
    timing_cache: Path | None = None
    version_compatible: bool = False
    hardware_compatibility: str | None = None
    optimization_level: int | None = None
    cache_dir: Path | None = None
    show_progress: bool = True
    verbose: bool = False
    parity_threshold: float = DEFAULT_THRESHOLD


@dataclass
class OnnxFacts:
    """What the build needs from an ONNX file, read with onnxruntime (no `onnx` needed)."""

    path: Path
    sha256: str
    inputs: list[IOSpec]
    outputs: list[IOSpec]
    export: ExportInfo
    opset: int
    #: the metadata's precision label when it disagrees with the graph (which wins)
    labelled_precision: str | None = None


@dataclass
class PreparedBuild:
    """Everything known before TensorRT is imported."""

    request: BuildRequest
    plan_path: Path
    manifest_path: Path
    facts: OnnxFacts
    geometry: InputGeometry
    profiles: list[ShapeProfile]
    #: the engine's precision: the request's, or INT8 for a QDQ graph built with the default
    precision: Precision = Precision.FP16
    fp32_sibling: OnnxFacts | None = None


@dataclass
class BuildResult:
    plan_path: Path
    manifest_path: Path
    manifest: PlanManifest
    cache_hit: bool = False


def default_plan_path(onnx_path: Path) -> Path:
    """fcn8s.fp16.onnx -> fcn8s.plan, fcn8s.onnx -> fcn8s.plan."""
    name = onnx_path.name
    for suffix in (".fp16.onnx", ".onnx"):
        if name.endswith(suffix):
            return onnx_path.with_name(name[: -len(suffix)] + ".plan")
    return onnx_path.with_name(name + ".plan")


def read_onnx_facts(path: Path) -> OnnxFacts:
    """I/O specs and segdeploy metadata of an ONNX file; ArtifactError when unreadable."""
    import onnxruntime as ort

    from segdeploy.onnx_metadata import read_onnx_export_info
    from segdeploy.runtime.onnxruntime_runner import ORT_TYPE_NAMES

    export = read_onnx_export_info(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ArtifactError(f"cannot read ONNX file {path} ({first_line(exc, limit=300)})",
                            expected="a valid ONNX model written by `segdeploy export`",
                            fix="re-export it: segdeploy export CHECKPOINT") from exc

    def spec(arg: Any, mode: str) -> IOSpec:
        return IOSpec(arg.name, mode, ORT_TYPE_NAMES.get(arg.type, arg.type), tuple(arg.shape))

    label = None
    actual = _graph_precision(path, export.precision)
    if actual != export.precision:
        label, export = export.precision, dataclasses.replace(export, precision=actual)
    return OnnxFacts(path=path, sha256=sha256_file(path),
                     inputs=[spec(a, "input") for a in session.get_inputs()],
                     outputs=[spec(a, "output") for a in session.get_outputs()],
                     export=export, opset=_opset(path, export), labelled_precision=label)


def _graph_precision(path: Path, label: Precision) -> Precision:
    """What the graph computes in (QDQ -> int8, float16 -> fp16); the label without `onnx`."""
    try:
        from segdeploy.onnx_precision import effective_precision

        return effective_precision(path, label)[0]
    except ImportError:
        return label


def _opset(path: Path, export: ExportInfo) -> int:
    """The real default-domain opset when `onnx` is installed, else the exporter's record."""
    try:
        import onnx
    except ImportError:
        return int(export.opset)
    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")),
                int(export.opset))


def sibling_fp32_onnx(path: Path, facts: OnnxFacts) -> OnnxFacts | None:
    """MODEL.onnx beside MODEL.fp16.onnx, when it is the FP32 export of the same model."""
    if not path.name.endswith(".fp16.onnx"):
        return None
    candidate = path.with_name(path.name[: -len(".fp16.onnx")] + ".onnx")
    if not candidate.is_file():
        return None
    try:
        other = read_onnx_facts(candidate)
    except ArtifactError:
        return None
    same_source = (other.export.source_sha256 == facts.export.source_sha256
                   and other.export.card.arch == facts.export.card.arch)
    same_io = [(s.name, s.dtype) for s in other.inputs + other.outputs] == \
        [(s.name, s.dtype) for s in facts.inputs + facts.outputs]
    return (other if other.export.precision is Precision.FP32 and same_source and same_io
            else None)


def prepare_build(request: BuildRequest) -> PreparedBuild:
    """Check paths, the ONNX, profiles and options; raise a SegdeployError on the first problem."""
    src = Path(request.onnx_path)
    if not src.is_file():
        raise UsageError(f"ONNX file {src} does not exist",
                         expected="the path of an .onnx file written by `segdeploy export`",
                         fix="check the path, or export first: segdeploy export CHECKPOINT")
    if not os.access(src, os.R_OK):
        raise UsageError(f"ONNX file {src} is not readable", fix="check its permissions")
    plan_path = Path(request.output) if request.output else default_plan_path(src)
    check_output_path(plan_path)
    manifest_path = plan_manifest_path(plan_path)
    check_output_path(manifest_path)
    if plan_path.resolve() == src.resolve():
        raise UsageError(f"output {plan_path} would overwrite the ONNX input",
                         fix="choose another -o path, e.g. MODEL.plan")
    requested = Precision.parse(request.precision)
    if requested not in PRECISIONS:
        raise UsageError(f"unknown precision {request.precision!r}",
                         expected="fp16, fp32 or int8")
    if request.optimization_level is not None:
        check_optimization_level(request.optimization_level)
    if request.hardware_compatibility not in (None, *HARDWARE_COMPATIBILITY):
        raise UsageError(f"unknown hardware compatibility {request.hardware_compatibility!r}",
                         expected=" or ".join(HARDWARE_COMPATIBILITY))
    if request.workspace_bytes is not None and request.workspace_bytes <= 0:
        raise UsageError("the workspace must be positive", fix="pass e.g. --workspace 2GiB")
    if request.timing_cache is not None:
        check_output_path(request.timing_cache)
    if request.cache_dir is not None:
        EngineCache(request.cache_dir).prepare()

    facts = read_onnx_facts(src)
    precision = requested
    if facts.export.precision is Precision.INT8 and requested is Precision.FP16:  # CLI default
        precision = Precision.INT8
    if Precision.INT8 in (precision, facts.export.precision):
        decide_precision(10, precision, facts.export.precision)  # refuses mismatches
    if len(facts.inputs) != 1 or len(facts.inputs[0].shape) != 4:
        raise ArtifactError(
            f"{src} has inputs {[(i.name, list(i.shape)) for i in facts.inputs]}",
            expected="one image input of rank 4 (N x C x H x W)",
            fix="export the model with `segdeploy export`")
    geometry = dataclasses.replace(InputGeometry.from_export(facts.export, facts.inputs[0].shape),
                                   name=facts.inputs[0].name)
    profiles = list(request.profiles) if request.profiles else [default_profile(geometry)]
    validate_profiles(profiles, geometry)
    sibling = (sibling_fp32_onnx(src, facts) if facts.export.precision is Precision.FP16
               else None)
    return PreparedBuild(request, plan_path, manifest_path, facts, geometry, profiles,
                         precision, sibling)


def import_tensorrt() -> Any:
    """The tensorrt module, or MissingDependencyError that says how to install it."""
    try:
        import tensorrt
    except Exception as exc:  # ImportError, or OSError when the libraries do not load
        raise MissingDependencyError("tensorrt", extra="tensorrt", fix=TENSORRT_FIX,
                                     purpose=f"to build engines; import failed: {exc}") from exc
    return tensorrt


@dataclass
class GpuInfo:
    name: str
    compute_capability: str
    cuda_version: str


def query_gpu(device: int = 0) -> GpuInfo:
    """Name, compute capability and CUDA runtime version (DeviceError where there is no GPU)."""
    from segdeploy.runtime import cuda_memory as cm

    cm.use_device(device)
    prop = cm.check(cm.cudart().cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
    name = prop.name.decode(errors="replace") if isinstance(prop.name, bytes) else str(prop.name)
    version = int(cm.check(cm.cudart().cudaRuntimeGetVersion(), "cudaRuntimeGetVersion"))
    return GpuInfo(name.rstrip("\x00").strip(), cm.compute_capability(device),
                   f"{version // 1000}.{version % 1000 // 10}")


def build_engine(request: BuildRequest, *,
                 runner_factory: Callable[[Path], Any] | None = None) -> BuildResult:
    """Build, verify and publish MODEL.plan + MODEL.plan.json (see the module docstring)."""
    from segdeploy.engine.network import EngineSettings, build_plan

    prep = prepare_build(request)
    request = prep.request
    trt = import_tensorrt()
    version = TrtVersion.parse(trt.__version__)
    check_supported(version)
    check_build_options(version, version_compatible=request.version_compatible,
                        hardware_compatibility=request.hardware_compatibility,
                        optimization_level=request.optimization_level)
    gpu = query_gpu()
    check_hardware_compatibility(request.hardware_compatibility, gpu.compute_capability)
    choice = decide_precision(version.major, prep.precision, prep.facts.export.precision,
                            fp32_sibling=prep.fp32_sibling is not None)
    source = prep.fp32_sibling if choice.onnx_source == "fp32-sibling" else prep.facts
    assert source is not None
    check_opset(version, source.opset)
    check_output_dtypes(version, {o.name: o.dtype for o in source.outputs})
    flags = _cache_flags(prep, choice, source)
    key = cache_key(onnx_sha256=prep.facts.sha256, flags=flags, tensorrt_version=str(version),
                    compute_capability=gpu.compute_capability)
    engine_cache = EngineCache(request.cache_dir) if request.cache_dir else None
    hit = engine_cache.lookup(key) if engine_cache else None
    if hit is not None:
        plan_bytes, manifest = hit
        manifest.build_flags = {**manifest.build_flags, "engine_cache": {"key": key, "hit": True}}
        _publish(prep, plan_bytes, manifest)
        return BuildResult(prep.plan_path, prep.manifest_path, manifest, cache_hit=True)

    export, onnx_input = _network_source(choice, prep, source)
    settings = EngineSettings(
        input_name=prep.geometry.name, profiles=prep.profiles, precision=prep.precision,
        workspace_bytes=request.workspace_bytes, timing_cache=request.timing_cache,
        version_compatible=request.version_compatible,
        hardware_compatibility=request.hardware_compatibility,
        optimization_level=request.optimization_level, show_progress=request.show_progress,
        verbose=request.verbose)
    started = time.perf_counter()
    built = build_plan(trt, version, choice, settings, onnx_input)
    seconds = time.perf_counter() - started

    problems = io_problems(source.inputs + source.outputs, built.io)
    problems += engine_profile_problems(prep.profiles, built.profiles)
    if problems:
        raise BuildError("the engine does not match the ONNX: " + "; ".join(problems),
                         fix="report this with the ONNX file and TensorRT version")
    manifest = PlanManifest(
        export=export, tensorrt_version=str(version), precision=prep.precision,
        profiles=[{prep.geometry.name: p.to_dict()} for p in prep.profiles],
        io=[s.to_dict() for s in built.io], onnx_sha256=prep.facts.sha256,
        gpu_name=gpu.name, compute_capability=gpu.compute_capability,
        cuda_version=gpu.cuda_version, build_seconds=round(seconds, 3),
        plan_sha256=sha256_bytes(built.plan),
        build_flags={**flags, "layers": built.layers, "onnx_file": prep.facts.path.name,
                     "source_onnx_file": source.path.name,
                     "timing_cache": str(request.timing_cache) if request.timing_cache else None,
                     "engine_cache": {"key": key, "hit": False} if engine_cache else None})
    reference = prep.fp32_sibling or prep.facts
    _verify_and_publish(prep, built.plan, manifest, reference, runner_factory)
    if engine_cache is not None:
        engine_cache.store(key, built.plan, manifest)
    return BuildResult(prep.plan_path, prep.manifest_path, manifest)


def _cache_flags(prep: PreparedBuild, choice: PrecisionChoice, source: OnnxFacts) -> dict[str, Any]:
    """Everything that changes the engine; the engine-cache key hashes it."""
    r = prep.request
    return {"precision": r.precision, "precision_choice": choice.to_dict(),
            "source_onnx_sha256": source.sha256,
            **({"onnx_precision_label": prep.facts.labelled_precision}
               if prep.facts.labelled_precision else {}),
            "profiles": [p.to_dict() for p in prep.profiles], "workspace_bytes": r.workspace_bytes,
            "optimization_level": r.optimization_level,
            "version_compatible": r.version_compatible,
            "hardware_compatibility": r.hardware_compatibility,
            "segdeploy_version": __version__}


def _network_source(choice: PrecisionChoice, prep: PreparedBuild,
                    source: OnnxFacts) -> tuple[ExportInfo, Path | bytes]:
    """(ExportInfo for the plan manifest, path or serialized bytes of the graph TensorRT parses).

    The ExportInfo's precision is the ENGINE's precision: Segmenter.info comes from it, and
    `verify` / `bench` pick thresholds and labels by it. On TensorRT 8.x an FP16 engine is
    built from the FP32 graph (+ BuilderFlag.FP16), so the graph's own "fp32" must not leak
    into the manifest.
    """
    if choice.onnx_source != "convert-to-fp16":
        return dataclasses.replace(source.export, precision=prep.precision), source.path
    try:
        import onnx

        from segdeploy.export.fp16 import convert_to_mixed_fp16
    except ImportError as exc:
        raise MissingDependencyError(
            "onnx", extra="torch", purpose="to convert an FP32 ONNX to FP16 on TensorRT >= 10",
            fix="build from MODEL.fp16.onnx (segdeploy export writes it), or "
                "pip install 'segdeploy[torch]'") from exc
    feeds = [sample_feeds(source.export, p.opt, seed=i) for i, p in enumerate(prep.profiles)]
    model, kept = convert_to_mixed_fp16(onnx.load(str(source.path)), feeds)
    export = dataclasses.replace(source.export, precision=Precision.FP16, fp32_nodes=dict(kept))
    return export, model.SerializeToString()


def _publish(prep: PreparedBuild, plan_bytes: bytes, manifest: PlanManifest) -> None:
    """Both files renamed into place together; on any error neither is."""
    with atomic_path(prep.plan_path) as tmp_plan, atomic_path(prep.manifest_path) as tmp_json:
        tmp_plan.write_bytes(plan_bytes)
        tmp_json.write_text(manifest_text(manifest))


def _verify_and_publish(prep: PreparedBuild, plan_bytes: bytes, manifest: PlanManifest,
                        reference: OnnxFacts, runner_factory: Callable[[Path], Any] | None) -> None:
    """Smoke-run the plan from a private folder beside the output, then publish both files."""
    factory = runner_factory or _tensorrt_runner
    with tempfile.TemporaryDirectory(dir=prep.plan_path.parent, prefix=".segdeploy-build-") as tmp:
        staged = Path(tmp) / prep.plan_path.name
        staged.write_bytes(plan_bytes)
        write_plan_manifest(staged, manifest)
        label = f"onnxruntime {reference.export.precision} ({reference.path.name})"
        with OnnxRuntimeRunner(reference.path, providers="cpu") as ort_runner, \
                factory(staged) as engine_runner:
            summary = run_parity(ort_runner, engine_runner,
                                 reference.export, prep.profiles,
                                 threshold=prep.request.parity_threshold, reference_label=label)
        manifest.parity = summary
        check_parity(summary)
        _publish(prep, plan_bytes, manifest)


def _tensorrt_runner(plan_path: Path) -> Any:
    from segdeploy.runtime.tensorrt_runner import TensorRTRunner

    return TensorRTRunner(plan_path)
