"""`segdeploy build MODEL.onnx -o MODEL.plan`: a verified TensorRT engine + its .plan.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from segdeploy.engine.precision import PRECISIONS as BUILD_PRECISIONS


def request_from_options(model: str, *, output: str | None = None, precision: str = "fp16",
                         profiles: tuple[str, ...] = (), workspace: str | None = None,
                         timing_cache: str | None = None, version_compatible: bool = False,
                         hardware_compatibility: str | None = None,
                         optimization_level: int | None = None, cache_dir: str | None = None,
                         progress: bool = True, verbose: bool = False) -> Any:
    """The command's options as a BuildRequest; bad values raise UsageError (no TensorRT)."""
    from segdeploy.engine.engine_build import BuildRequest
    from segdeploy.engine.precision import parse_workspace
    from segdeploy.engine.profiles import parse_profile
    from segdeploy.precision import Precision

    return BuildRequest(
        onnx_path=Path(model), output=Path(output) if output else None,
        precision=Precision.parse(precision),
        profiles=[parse_profile(p) for p in profiles] or None,
        workspace_bytes=parse_workspace(workspace) if workspace else None,
        timing_cache=Path(timing_cache) if timing_cache else None,
        version_compatible=version_compatible, hardware_compatibility=hardware_compatibility,
        optimization_level=optimization_level, cache_dir=Path(cache_dir) if cache_dir else None,
        show_progress=progress, verbose=verbose)


@click.command("build")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Plan to write [default: MODEL.plan beside the ONNX]; MODEL.plan.json too.")
@click.option("--precision", type=click.Choice([p.value for p in BUILD_PRECISIONS]), default="fp16",
              show_default=True, help="An INT8 QDQ ONNX (`segdeploy quantize`) builds as int8.")
@click.option("--profile", "profiles", multiple=True, metavar="min=NxCxHxW,opt=..,max=..",
              help="An optimisation profile (repeat for several) [default: from the model's "
                   "metadata: smallest accepted size, training size, 4x1024x1024].")
@click.option("--workspace", metavar="SIZE", help="Builder workspace limit, e.g. 2GiB, 512MiB.")
@click.option("--timing-cache", type=click.Path(dir_okay=False),
              help="Load and update this TensorRT timing cache (faster rebuilds).")
@click.option("--version-compatible", is_flag=True,
              help="Plan runs on later TensorRT versions of the same major (TensorRT >= 8.6).")
@click.option("--hardware-compatibility", type=click.Choice(["ampere+", "same-cc"]),
              help="Plan runs on any Ampere+ GPU, or any GPU of this compute capability "
                   "(same-cc: TensorRT >= 10.9).")
@click.option("--optimization-level", type=click.IntRange(0, 5),
              help="Builder optimisation level: 0 builds fastest, 5 searches most [TensorRT "
                   "default: 3].")
@click.option("--cache-dir", type=click.Path(file_okay=False),
              help="Engine cache: reuse the plan of an identical earlier build.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: when the output is a terminal].")
@click.option("-v", "--verbose", is_flag=True, help="Show TensorRT's info and verbose log.")
def command(model: str, output: str | None, precision: str, profiles: tuple[str, ...],
            workspace: str | None, timing_cache: str | None, version_compatible: bool,
            hardware_compatibility: str | None, optimization_level: int | None,
            cache_dir: str | None, progress: bool | None, verbose: bool) -> None:
    """Build a TensorRT engine from MODEL.onnx (or MODEL.fp16.onnx) and verify it.

    \b
    FP16 on TensorRT >= 10 is built strongly typed from the mixed-precision ONNX (made on the
    fly from an FP32 ONNX); on TensorRT 8.x from the FP32 ONNX with the FP16 builder flag.
    The engine must hold FP16 layers, match the ONNX's I/O and profiles, and agree with ONNX
    Runtime (argmax >= 99.5%) at every profile's min/opt/max before anything is written.
    """
    from rich.console import Console

    from segdeploy.engine.engine_build import build_engine

    err = Console(stderr=True)
    request = request_from_options(
        model, output=output, precision=precision, profiles=profiles, workspace=workspace,
        timing_cache=timing_cache, version_compatible=version_compatible,
        hardware_compatibility=hardware_compatibility, optimization_level=optimization_level,
        cache_dir=cache_dir, progress=err.is_terminal if progress is None else progress,
        verbose=verbose)
    result = build_engine(request)
    m = result.manifest
    console = Console()
    source = "reused from the engine cache" if result.cache_hit else \
        f"built in {m.build_seconds:.1f} s"
    console.print(f"[bold green]wrote[/] {result.plan_path} + {result.manifest_path.name} "
                  f"({source})", highlight=False)
    if m.build_flags.get("onnx_precision_label"):
        console.print(f"  note: the ONNX metadata says {m.build_flags['onnx_precision_label']} "
                      f"but its graph is {m.export.precision}; built as the graph is",
                      highlight=False)
    layers = m.build_flags.get("layers", {}).get("by_precision", {})
    console.print(f"  {m.precision}, TensorRT {m.tensorrt_version}, {m.gpu_name} "
                  f"(sm {m.compute_capability}), layers {layers}", highlight=False)
    for profile in m.profiles:
        for name, shapes in profile.items():
            dims = ", ".join(f"{k}={'x'.join(map(str, v))}" for k, v in shapes.items())
            console.print(f"  profile {name}: {dims}", highlight=False)
    if m.parity:
        console.print(f"  parity vs {m.parity.get('reference')}: min argmax agreement "
                      f"{m.parity.get('min_agreement', 0):.4%} over "
                      f"{len(m.parity.get('points', []))} shapes", highlight=False)
