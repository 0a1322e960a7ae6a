"""`segdeploy card MODEL.onnx --classes a,b --mean M --std S`: metadata for a foreign ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from segdeploy.cli.export import _floats, _names


@click.command("card")
@click.argument("model", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--classes", callback=_names, required=True,
              help="Class names, a,b,c (one per output channel); a 1-channel (binary) output "
                   "takes the foreground's name, or background,foreground.")
@click.option("--mean", callback=_floats, required=True,
              help="Per-channel mean on image/255 (one value: all channels).")
@click.option("--std", callback=_floats, required=True,
              help="Per-channel std on image/255 (one value: all channels).")
@click.option("--in-channels", type=click.IntRange(min=1),
              help="Input channels [default: the graph's, else 3].")
@click.option("--size-multiple", type=click.IntRange(min=1),
              help="H and W must be multiples of N (e.g. 32) [default: 1].")
@click.option("--arch", help="Model name shown by `segdeploy info` [default: the file stem].")
@click.option("--threshold", type=float,
              help="1-channel (binary) output: foreground where the output is above this "
                   "[default: 0.5 after a sigmoid, else 0].")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here [default: rewrite MODEL in place].")
def command(model: Path, classes: list[str], mean: list[float], std: list[float],
            in_channels: int | None, size_multiple: int | None, arch: str | None,
            threshold: float | None, output: Path | None) -> None:
    """Write segdeploy's model card into an ONNX another tool wrote, after checking it
    against the graph, so predict, verify, build and Segmenter.load can use it.

    \b
    segdeploy card model.onnx --classes bg,road,car --mean 0.485,0.456,0.406 \\
        --std 0.229,0.224,0.225 --size-multiple 32 -o model.card.onnx
    """
    from segdeploy.export.card import CardRequest, write_card

    out, info = write_card(CardRequest(model, classes, mean, std, in_channels, size_multiple,
                                       arch, output, threshold))
    c = info.card
    if c.config.get("binary_note"):
        click.echo(c.config["binary_note"])
    click.echo(f"wrote {out} ({c.num_classes} classes, {c.in_channels} channel(s), "
               f"{info.precision}, output {c.output_mode}"
               + (f", H/W multiples of {c.size_multiple}" if c.size_multiple > 1 else "") + ")")
