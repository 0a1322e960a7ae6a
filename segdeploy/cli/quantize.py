"""`segdeploy quantize MODEL.onnx --data DATA`: a gated static INT8 (QDQ) ONNX."""

from __future__ import annotations

import sys

import click

from segdeploy.export.quantize_defaults import CALIBRATIONS, DEFAULT_CALIBRATION


def _scales(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[float, ...]:
    try:
        out = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        out = ()
    if not out or min(out) <= 0:
        raise click.BadParameter(f"{value!r}: expected positive factors, e.g. 1,2")
    return out


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
              help="Gate: argmax agreement with FP32 in %, applied as given [default: the "
                   "lower of 99 and FP32's own agreement under +-1 grey level of noise].")
@click.option("--max-miou-drop", type=click.FloatRange(min=0),
              help="Gate: mIoU points the INT8 graph may lose [default: 1].")
@click.option("--gate-scales", default="1,2", show_default=True, callback=_scales,
              help="Sizes the gate judges at, as factors of the validation images' size.")
@click.option("--allow-slower", is_flag=True,
              help="Write the INT8 file even when it is not faster than FP32 on this CPU.")
@click.option("--symmetric", is_flag=True,
              help="int8 activations with zero point 0, as TensorRT needs (default: uint8, "
                   "faster on CPUs).")
@click.option("--threads", type=click.IntRange(min=1), help="ONNX Runtime threads.")
def command(model: str, **options) -> None:
    """Quantize MODEL.onnx to INT8 and check it keeps the FP32 segmentation.

    Calibrates once; when the gate fails, layers are put back in float by agreement gained
    per FLOP (cheap layers first) until it passes. The file is timed against FP32 on this
    CPU and not written when INT8 does not pay off (--allow-slower writes it).
    """
    from rich.console import Console

    from segdeploy.export.quantize import QuantizeOptions, quantize_model

    console = Console(stderr=True)
    with _progress(console) as step:
        result = quantize_model(model, QuantizeOptions(**options),
                                log=lambda text: console.print(text, highlight=False),
                                step=step)
    for note in result.notes:
        console.print(f"note: {note}", highlight=False)
    lines = [f"wrote {result.output} ({result.calibration} calibration, "
             f"{result.seconds:.1f} s)"]
    lines += [f"gate {c.line()}" for c in result.checks]
    lines.append(f"agreement limit decided by: the {result.decided_by}")
    if result.fp32_nodes:
        lines.append("layers kept in float (share of FLOPs, agreement gained in float):")
        lines += [f"  {n}: {result.costs.get(n, 0.0):.2f}%, "
                  f"{result.sensitivity.get(n, 0.0):+.3f} points" for n in result.fp32_nodes]
    else:
        lines.append("layers kept in float: none")
    if result.speed:
        s = result.speed
        lines.append(f"speed: {s.speedup:.2f}x ONNX Runtime FP32 ({s.int8_ms:.1f} vs "
                     f"{s.fp32_ms:.1f} ms at {'x'.join(map(str, s.shape))}, {s.cpu})")
    click.echo("\n".join(lines))


def _progress(console):
    """A rich progress bar for the per-layer phase where stderr is a terminal, else a no-op."""
    import contextlib

    if not sys.stderr.isatty():
        return contextlib.nullcontext(lambda *_: None)
    from rich.progress import Progress

    @contextlib.contextmanager
    def bar():
        with Progress(console=console, transient=True) as progress:
            tasks: dict[str, int] = {}

            def step(label: str, done: int, total: int) -> None:
                if label not in tasks:
                    tasks[label] = progress.add_task(label, total=total)
                progress.update(tasks[label], completed=done)
            yield step
    return bar()
