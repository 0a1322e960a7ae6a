"""`segdeploy quantize MODEL.onnx --data DATA`: a gated static INT8 (QDQ) ONNX."""

from __future__ import annotations

import click

from segdeploy.export.quantize_defaults import CALIBRATIONS, DEFAULT_CALIBRATION


@click.command("quantize")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--data", "-d", required=True,
              help="Dataset the model was trained on (built-in name or folder): its training "
                   "split calibrates, its validation split judges the INT8 graph.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="INT8 ONNX to write [default: MODEL.int8.onnx].")
@click.option("--calibration", type=click.Choice(CALIBRATIONS), default=DEFAULT_CALIBRATION,
              show_default=True, help="How activation ranges are measured.")
@click.option("--calibration-images", default=32, show_default=True,
              type=click.IntRange(min=1))
@click.option("--val-images", default=16, show_default=True, type=click.IntRange(min=1),
              help="Validation images of the gate.")
@click.option("--min-agreement", type=click.FloatRange(0, 100),
              help="Gate: argmax agreement with FP32 in %  [default: 99].")
@click.option("--max-miou-drop", type=click.FloatRange(min=0),
              help="Gate: mIoU points the INT8 graph may lose [default: 1].")
@click.option("--symmetric", is_flag=True,
              help="int8 activations with zero point 0, as TensorRT needs (default: uint8, "
                   "faster on CPUs).")
@click.option("--threads", type=click.IntRange(min=1), help="ONNX Runtime threads.")
def command(model: str, **options) -> None:
    """Quantize MODEL.onnx to INT8 and check it keeps the FP32 segmentation.

    Layers that cost the most agreement are kept in float until the gate passes; they are
    listed, and stored in the metadata.
    """
    from rich.console import Console

    from segdeploy.export.quantize import QuantizeOptions, quantize_model

    console = Console(stderr=True)
    result = quantize_model(model, QuantizeOptions(**options),
                            log=lambda text: console.print(text, highlight=False))
    g = result.gate
    kept = ", ".join(result.fp32_nodes) if result.fp32_nodes else "none"
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    click.echo(f"wrote {result.output} ({result.calibration} calibration, "
               f"{result.seconds:.1f} s)\n"
               f"gate on {g.images} validation images: agreement {g.agreement:.3f}%, "
               f"mIoU {g.miou_int8:.2f} vs fp32 {g.miou_fp32:.2f} ({-g.miou_drop:+.2f} points)\n"
               f"layers kept in float: {kept}")
