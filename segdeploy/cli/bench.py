"""`segdeploy bench --engine MODEL.plan|.onnx [--checkpoint MODEL.pt]`: latency and throughput."""

from __future__ import annotations

from pathlib import Path

import click

from segdeploy.cli.choices import bench_backend_choice, openvino_precision_choice


@click.command("bench",
               short_help="Time files you already have: latency, throughput (no accuracy).")
@click.option("--engine", "-e", "engines", multiple=True, type=click.Path(dir_okay=False),
              help="An .onnx (ONNX Runtime) or .plan (TensorRT) file; repeat to compare several.")
@click.option("--checkpoint", "-c", type=click.Path(dir_okay=False),
              help="The model's .pt checkpoint, to add PyTorch eager as a baseline.")
@click.option("--shape", "-s", "shapes", multiple=True, metavar="NxCxHxW",
              help="Input shape (or HxW for batch 1); repeat for several "
                   "[default: 1 x channels x the model's typical image size].")
@click.option("--warmup", type=click.IntRange(min=0), default=5, show_default=True,
              help="Untimed iterations before measuring.")
@click.option("--iterations", "-n", type=click.IntRange(min=1),
              help="Timed iterations per backend and shape [default: 50].")
@click.option("--duration", "-t", type=click.FloatRange(min=0, min_open=True),
              help="Measure each backend and shape for this many seconds instead.")
@click.option("--backend", "-b", "backends", multiple=True, type=bench_backend_choice(),
              help="Backends to run; repeat for several [default: every one the files allow].")
@click.option("--cuda-graph", type=click.Choice(["both", "on", "off"]), default="both",
              show_default=True, help="TensorRT: time with CUDA graphs, without, or both.")
@click.option("--openvino-precision", "ov_precisions", multiple=True,
              type=openvino_precision_choice(),
              help="OpenVINO inference precisions to time; repeat for several [default: fp32, "
                   "and bf16 where the CPU has AMX-BF16 or AVX-512 BF16].")
@click.option("--sequential", is_flag=True,
              help="Time backends one after another instead of round-robin per iteration.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for ONNX Runtime and PyTorch [default: theirs].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write every number, samples and environment to this JSON file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Draw the latency distributions to this .png/.svg/.pdf (needs matplotlib).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: when the output is a terminal].")
def command(engines: tuple[str, ...], checkpoint: str | None, shapes: tuple[str, ...],
            warmup: int, iterations: int | None, duration: float | None,
            backends: tuple[str, ...], cuda_graph: str, ov_precisions: tuple[str, ...],
            sequential: bool, threads: int | None,
            json_path: str | None, plot_path: str | None, progress: bool | None) -> None:
    """Time one batch per iteration on each backend and report min / mean / median / p90 /
    p95 / p99 / max latency, throughput and speed-up over ONNX Runtime FP32 (else the
    slowest backend).

    \b
    segdeploy bench --engine fcn8s.onnx --checkpoint fcn8s.pt -s 1x3x256x256 -s 4x3x256x256
    segdeploy bench --engine fcn8s.plan --duration 10 --json bench.json --plot bench.png

    Backends run round-robin, one iteration each in turn, so that ratios hold on a busy
    machine. "openvino" times the .onnx files with OpenVINO on the CPU.
    "segmenter" times Segmenter.predict on uint8 images (pre- and post-processing included);
    "tensorrt" adds host->device, GPU compute and device->host times from CUDA events.
    bench times files you already have and measures no accuracy; `segdeploy benchmark
    MODEL.pt --data DATA` makes every format and puts accuracy beside speed.
    """
    from rich.console import Console

    from segdeploy.atomic import probe_writable
    from segdeploy.bench.harness import BenchOptions, parse_shape, plan_backends, run_bench
    from segdeploy.bench.report import check_plot_path, print_report, write_json, write_plot
    from segdeploy.errors import UsageError, require

    if not engines and not checkpoint:
        raise UsageError("nothing to benchmark", expected="--engine MODEL.onnx|.plan and/or "
                         "--checkpoint MODEL.pt")
    if iterations is not None and duration is not None:
        raise UsageError("both --iterations and --duration were given", expected="one of them")
    for path in (json_path, plot_path):
        if path:  # before the measurement, not after it: a full disk is found now
            probe_writable(path)
    if plot_path:
        check_plot_path(plot_path)
        require("matplotlib", extra="plot", purpose="to draw --plot")
    card = _card(engines, checkpoint, need=not shapes)
    parsed = [parse_shape(s, card.in_channels if card else 3) for s in shapes] or [
        (1, card.in_channels, *card.typical_size())]
    from segdeploy.bench.shapes import validate_shapes

    validate_shapes(parsed, card)
    graphs = {"both": (False, True), "on": (True,), "off": (False,)}[cuda_graph]
    chosen, skipped = plan_backends(engines, checkpoint, backends or None,
                                    BenchOptions(threads=threads, cuda_graphs=graphs,
                                                 openvino_precisions=ov_precisions or None))
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table to 80 columns
        console = Console(width=max(console.width, 160))
    report = run_bench(chosen, parsed, warmup=warmup, iterations=iterations, duration=duration,
                       threads=threads, strict=bool(backends), interleave=not sequential,
                       progress=console.is_terminal if progress is None else progress,
                       settings={"engines": list(engines), "checkpoint": checkpoint,
                                 "arch": card.arch if card else Path(engines[0]).stem})
    report.skipped.update(skipped)
    if not report.results:
        name, why = next(iter(report.skipped.items()), ("", "no backend was selected"))
        raise UsageError(f"no backend could run ({name}: {why})" if name else why)
    print_report(report, console, json_path=json_path)
    if json_path:
        write_json(report, json_path)
        console.print(f"results written to {json_path}", highlight=False)
    if plot_path:
        write_plot(report, plot_path)
        console.print(f"plot written to {plot_path}", highlight=False)


def _card(engines: tuple[str, ...], checkpoint: str | None, *, need: bool = True):
    """The model card that gives the default shape: from the first engine, else the checkpoint.

    An ONNX without segdeploy metadata (another tool's) needs none when --shape is given:
    None then, and the backends that need a card (segmenter) are skipped saying why."""
    from segdeploy.errors import ArtifactError, UsageError

    if engines:
        from segdeploy.artifact_kind import sniff
        from segdeploy.artifacts import read_export_info

        for engine in map(Path, engines):
            kind = sniff(engine) if engine.is_file() else None
            if kind is not None and kind.name not in ("onnx", "plan", "unknown"):
                raise UsageError(f"--engine {engine} is {kind.what}",
                                 expected="an ONNX model or a TensorRT plan as --engine",
                                 fix=kind.use)

        try:
            return read_export_info(engines[0]).card
        except ArtifactError as exc:
            if not checkpoint and not need:
                return None
            if not checkpoint:
                raise ArtifactError(exc.what, expected="--shape NxCxHxW for a model without "
                                    "a card, or a card", fix=exc.fix) from None
    from segdeploy.reference_models.checkpoint import load_checkpoint

    if checkpoint is None:
        raise UsageError("nothing to benchmark", expected="--engine or --checkpoint")
    return load_checkpoint(checkpoint).card
