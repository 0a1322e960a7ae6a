"""`segdeploy verify MODEL.pt --engine MODEL.plan|.onnx`: parity with PyTorch on real images."""

from __future__ import annotations

import click

from segdeploy.cli.choices import backend_choice, openvino_precision_choice


@click.command("verify")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--engine", "-e", required=True, type=click.Path(dir_okay=False),
              help="The .onnx (ONNX Runtime) or .plan (TensorRT) file exported from CHECKPOINT.")
@click.option("--data", "-d",
              help="Built-in dataset or folder [default: the data the checkpoint was trained "
                   "on].")
@click.option("--split", type=click.Choice(["train", "val"]), default="val", show_default=True)
@click.option("--sizes", metavar="HxW,HxW,...",
              help="Sizes to resize the images to, e.g. 97x131,197x233 [default: the data's "
                   "size, a smaller and a larger one].")
@click.option("--max-images", type=click.IntRange(min=1), default=16, show_default=True,
              help="Images taken evenly across the split.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--min-agreement", type=click.FloatRange(0, 100),
              help="Minimum argmax pixel agreement in percent [default: 99.9 for FP32 "
                   "engines, 99.5 for FP16].")
@click.option("--max-miou-drop", type=click.FloatRange(min=0),
              help="Largest allowed mIoU drop against the labels, in points [default: 0.5 "
                   "for FP16 engines, unchecked for FP32].")
@click.option("--threads", type=click.IntRange(min=1), help="ONNX Runtime CPU threads.")
@click.option("--backend", type=backend_choice(),
              default=None, help="Runtime of the engine [default: from the file suffix].")
@click.option("--precision", type=openvino_precision_choice(), default=None,
              help="OpenVINO inference precision; bf16 is judged like fp16.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the report to this JSON file.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML page (no network): the verdict, the "
                   "tables, and the worst images with both masks and where they differ.")
@click.option("--report-images", type=click.IntRange(1, 32), default=4, show_default=True,
              help="How many of the worst images (lowest agreement) --report shows.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: when the output is a terminal].")
@click.option("--pad-to-stride/--no-pad-to-stride", default=True, show_default=True,
              help="Reflect-pad each size to a multiple of the output stride and crop the "
                   "logits back, as `segdeploy predict` runs the model.")
@click.option("--classes-by-count", is_flag=True,
              help="Accept data whose class names differ from the model's when the counts "
                   "match.")
def command(checkpoint: str, engine: str, data: str | None, split: str, sizes: str | None,
            max_images: int, batch_size: int, min_agreement: float | None,
            max_miou_drop: float | None, threads: int | None, backend: str | None,
            precision: str | None, json_path: str | None, report_path: str | None,
            report_images: int, progress: bool | None, pad_to_stride: bool,
            classes_by_count: bool) -> None:
    """Run CHECKPOINT in PyTorch and ENGINE on the same images at several sizes; report logit
    errors (max / mean / p99), argmax agreement, IoU between the two masks and both mIoUs
    against the labels. Exits with code 1 when a threshold fails.

    \b
    segdeploy verify fcn8s.pt --engine fcn8s.plan
    segdeploy verify unet.pt -e unet.fp16.onnx --sizes 97x131,197x233 --json parity.json
    segdeploy verify unet.pt -e unet.int8.onnx --report verify.html
    """
    from rich.console import Console
    from rich.markup import escape

    from segdeploy.atomic import check_output_path
    from segdeploy.errors import ParityError
    from segdeploy.verify.compare import run_verify
    from segdeploy.verify.parity import parse_sizes
    from segdeploy.verify.report import print_report, write_json
    from segdeploy.verify.worst import WorstImages

    if json_path:
        check_output_path(json_path)
    if report_path:
        from segdeploy.reports.html import check_report_path

        check_report_path(report_path)
    worst = WorstImages(report_images) if report_path else None
    console = Console()
    if not console.is_terminal:  # piped or captured: do not squeeze the tables to 80 columns
        console = Console(width=max(console.width, 140))
    report = run_verify(checkpoint, engine, data=data, split=split,
                        sizes=parse_sizes(sizes) if sizes else None, max_images=max_images,
                        batch_size=batch_size, min_agreement=min_agreement,
                        max_miou_drop=max_miou_drop, threads=threads,
                        backend=backend, precision=precision,
                        progress=console.is_terminal if progress is None else progress,
                        pad_to_stride=pad_to_stride, classes_by_count=classes_by_count,
                        worst=worst)
    print_report(report, console)
    for note in report["notes"]:
        console.print("[yellow]note[/] " + escape(note), highlight=False)
    if json_path:
        write_json(report, json_path)
        console.print(f"report written to {json_path}", highlight=False)
    if report_path and worst is not None:
        from segdeploy.verify.html_page import write_verify_page

        write_verify_page(report, worst.items(), report_path)
        console.print(f"HTML report written to {report_path}", highlight=False)
    if not report["passed"]:
        fails = [f for r in report["sizes"] for f in r["failures"]]
        raise ParityError(
            f"{report['engine_name']} disagrees with PyTorch: {fails[0]}"
            + (f" (and {len(fails) - 1} more)" if len(fails) > 1 else ""),
            expected=f"argmax agreement >= {report['thresholds']['min_agreement']:g}%"
                     + (f" and mIoU drop <= {report['thresholds']['max_miou_drop']:g} points"
                        if report["thresholds"]["max_miou_drop"] is not None else ""),
            fix=_parity_fix(str(report["precision"])))


def _parity_fix(precision: str) -> str:
    """What to try for a failed verify, for the precision that failed."""
    relax = "or relax --min-agreement / --max-miou-drop if the loss is acceptable"
    if precision == "int8":
        return ("quantize again with another --calibration or more --calibration-images "
                f"(segdeploy quantize keeps sensitive layers in float), use the FP32 file, {relax}")
    if precision in ("fp16", "bf16"):
        return (f"re-export with a lower --fp16-bound (more layers kept FP32), use the FP32 "
                f"engine, {relax}")
    return f"re-export from this checkpoint (an FP32 engine should match it), {relax}"
