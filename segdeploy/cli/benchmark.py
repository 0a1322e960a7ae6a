"""`segdeploy benchmark MODEL.pt --data DATA`: every format, accuracy beside speed, one table."""

from __future__ import annotations

import click

from segdeploy.bench.formats import FORMAT_KEYS


@click.command("benchmark",
               short_help="Export every format, then accuracy beside speed in one table.")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--data", "-d", required=True,
              help="Labelled data for the validation images: a built-in dataset (brain, "
                   "nuclei) or a dataset folder (its val split); also calibrates INT8.")
@click.option("--formats", "-f", "formats", multiple=True, metavar="NAME[,NAME...]",
              help=f"Formats to run [default: all]: {', '.join(FORMAT_KEYS)}.")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Folder of the exported files, reused when up to date [default: "
                   "NAME-benchmark beside the checkpoint].")
@click.option("--images", "-n", type=click.IntRange(min=1), default=16, show_default=True,
              help="Validation images scored and timed.")
@click.option("--warmup", type=click.IntRange(min=0), default=3, show_default=True,
              help="Untimed rounds before timing.")
@click.option("--duration", "-t", type=click.FloatRange(min=0, min_open=True),
              help="Seconds of timing per format [default: 3].")
@click.option("--iterations", type=click.IntRange(min=1),
              help="Timed images per format instead of --duration.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for PyTorch, ONNX Runtime and OpenVINO [default: theirs].")
@click.option("--opset", type=click.Choice(["17", "18"]), default="18", show_default=True,
              help="ONNX opset of the export (17 for TensorRT 8.x).")
@click.option("--with-argmax", is_flag=True,
              help="Export with the argmax in the graph (a uint8 `mask` output).")
@click.option("--argmax-dtype", type=click.Choice(["uint8", "int32"]),
              help="dtype of --with-argmax's mask [default: uint8 up to 256 classes]; "
                   "int32 for TensorRT 8.x, which rejects uint8 outputs.")
@click.option("--calibration-images", type=click.IntRange(min=1), default=32,
              show_default=True, help="Training images the INT8 ranges are measured on.")
@click.option("--rebuild", is_flag=True, help="Make every file again, even when up to date.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Write every row (samples included) and the machine to this JSON file.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False),
              help="Draw each format's latency distribution to this .png/.svg/.pdf "
                   "(needs matplotlib: the plot extra).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write the table, its gates and the latency plot as one "
                   "self-contained HTML page (.html).")
@click.option("--markdown", is_flag=True, help="Also print the table as GitHub markdown.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: when the output is a terminal].")
def command(checkpoint: str, data: str, formats: tuple[str, ...], out: str | None,
            images: int, warmup: int, duration: float | None, iterations: int | None,
            threads: int | None, opset: str, with_argmax: bool, argmax_dtype: str | None,
            calibration_images: int, rebuild: bool, json_path: str | None,
            plot_path: str | None, report_path: str | None, markdown: bool,
            progress: bool | None) -> None:
    """Export the checkpoint to every format this machine can run, score each against
    PyTorch and the labels, time them together, and print one table.

    \b
    segdeploy benchmark unet.pt --data brain
    segdeploy benchmark unet.pt --data brain -f onnxruntime-fp32,openvino-bf16 --json b.json

    Formats: ONNX Runtime FP32 / FP16 / INT8 (QDQ), OpenVINO FP32 / BF16 / INT8, TensorRT
    FP16 / INT8 (where TensorRT and a GPU are). Columns: status (ok, gate failed, export
    failed, run failed, not available: with the reason), file size, argmax agreement with
    PyTorch, mIoU and its drop from PyTorch's, p50 latency and images/s of Segmenter.predict
    per image, all formats timed round-robin. A format that fails is a row, not an exit.
    Unlike `segdeploy bench`, which times files you already have (no accuracy), this
    command makes the files and measures accuracy and speed side by side.
    """
    from rich.console import Console

    from segdeploy.atomic import probe_writable
    from segdeploy.bench import format_results as fr
    from segdeploy.bench.formats import select_formats
    from segdeploy.cli.benchmark_artifacts import MakeOptions
    from segdeploy.cli.benchmark_run import BenchmarkOptions, run_benchmark
    from segdeploy.errors import UsageError, require

    if iterations is not None and duration is not None:
        raise UsageError("both --iterations and --duration were given", expected="one of them",
                         fix="drop one of the two options")
    select_formats(formats)  # an unknown name fails now, not after the export
    if report_path:
        from segdeploy.reports.html import check_report_path

        check_report_path(report_path)
    for path in (json_path, plot_path):
        if path:  # before the work, not after it
            probe_writable(path)
    if plot_path:
        fr.check_plot_path(plot_path)
        require("matplotlib", extra="plot", purpose="to draw --plot")
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the table
        console = Console(width=max(console.width, 180))
    with_argmax = with_argmax or argmax_dtype is not None
    make = MakeOptions(data=data, opset=int(opset), with_argmax=with_argmax,
                       argmax_dtype=argmax_dtype, calibration_images=calibration_images,
                       threads=threads, reuse=not rebuild)
    result = run_benchmark(checkpoint, BenchmarkOptions(
        data=data, formats=list(formats) or None, out=out, images=images, warmup=warmup,
        iterations=iterations, duration=None if iterations else (duration or 3.0),
        threads=threads, make=make,
        progress=console.is_terminal if progress is None else progress))
    console.print(fr.render_table(result))
    console.print(f"[dim]{fr.legend(result)}[/]", highlight=False)
    if markdown:
        console.print(fr.markdown_table(result), highlight=False, markup=False)
    if json_path:
        fr.write_json(result, json_path)
        console.print(f"results written to {json_path}", highlight=False)
    if plot_path:
        fr.write_plot(result, plot_path)
        console.print(f"plot written to {plot_path}", highlight=False)
    if report_path:
        from segdeploy.bench.benchmark_page import write_benchmark_page

        write_benchmark_page(result, report_path)
        console.print(f"report written to {report_path}", highlight=False)
