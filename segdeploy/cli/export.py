"""`segdeploy export CKPT`: NAME.onnx (FP32), NAME.fp16.onnx (mixed FP16), NAME.parity.json."""

from __future__ import annotations

import click


def _floats(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        return [float(v) for v in value.replace(" ", "").split(",") if v]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of numbers "
                                 "(e.g. 0.485,0.456,0.406)") from None


def _names(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise click.BadParameter("give comma-separated class names (one name: the foreground "
                                 "of a 1-channel binary model)")
    return names


def _hw(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    parts = value.lower().replace(",", "x").split("x")
    try:
        h, w = (int(p) for p in parts)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not HxW (e.g. 512x512)") from None
    if min(h, w) < 1:
        raise click.BadParameter("height and width must be positive")
    return h, w


@click.command("export")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="FP32 ONNX path [default: SOURCE with .onnx]; NAME.fp16.onnx and "
                   "NAME.parity.json go beside it.")
@click.option("--opset", type=click.Choice(["17", "18"]), default="18", show_default=True,
              help="18: torch dynamo exporter (TensorRT >= 10); 17: legacy exporter for "
                   "TensorRT 8.5/8.6 (JetPack 5.1/6.0).")
@click.option("--fp16/--no-fp16", default=True, show_default=True,
              help="Also write the mixed-precision NAME.fp16.onnx (what TensorRT >= 10 builds).")
@click.option("--fp16-bound", default=512.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True),
              help="Nodes whose activations exceed this magnitude on sample images stay FP32.")
@click.option("--with-preprocess", is_flag=True,
              help="Graph input is uint8 N x H x W x C; cast and mean/std happen in the graph.")
@click.option("--with-argmax", is_flag=True,
              help="Add output `mask` (N x H x W class ids) beside `logits`.")
@click.option("--argmax-dtype", type=click.Choice(["uint8", "int32"]),
              help="dtype of --with-argmax's `mask` [default: uint8 up to 256 classes (4x "
                   "less to copy back), else int32]; int32 for TensorRT 8.x (JetPack 5.1/6.0), "
                   "which rejects uint8 outputs.")
@click.option("--check-sizes", multiple=True, metavar="NxCxHxW",
              help="Parity input sizes (repeat) [default: 1x3x97x131, 2x3x197x233, "
                   "1x3x512x512 and --max-side].")
@click.option("--max-side", default=1024, show_default=True, type=click.IntRange(min=0),
              help="Largest square size checked by default (0: skip).")
@click.option("--data", help="FP16 sample images: a built-in dataset (brain, nuclei), a "
                             "dataset folder, or a folder of images without masks [default: "
                             "the checkpoint's training data].")
@click.option("--channels", type=click.Choice(["grey", "grey3", "rgb"]),
              help="How --data's images are fed to a TorchScript/.pt2 model [default: grey3 "
                   "for a built-in grey dataset and a 3-channel model].")
@click.option("--trt-check/--no-trt-check", default=True, show_default=True,
              help="Fail when an op is not in TensorRT's ONNX operator list.")
@click.option("--trust-code", is_flag=True,
              help="Allow TorchScript / .pt2 sources (loading them runs code from the file).")
@click.option("--classes", callback=_names,
              help="TorchScript/.pt2: class names, a,b,c (a 1-channel binary model: the "
                   "foreground's name, or background,foreground).")
@click.option("--threshold", type=float,
              help="TorchScript/.pt2 with 1 output channel: foreground above this [default: "
                   "0.5 when the output is a probability, else 0].")
@click.option("--num-classes", type=click.IntRange(min=2),
              help="TorchScript/.pt2: class count (checked against the model's output).")
@click.option("--mean", callback=_floats, help="TorchScript/.pt2: per-channel mean on image/255.")
@click.option("--std", callback=_floats, help="TorchScript/.pt2: per-channel std on image/255.")
@click.option("--in-channels", type=click.IntRange(min=1), help="TorchScript/.pt2: channels.")
@click.option("--stride", type=click.IntRange(min=1), help="TorchScript/.pt2: output stride.")
@click.option("--size-multiple", type=click.IntRange(min=1),
              help="TorchScript/.pt2: H and W must be multiples of N (smp encoders: 32) "
                   "[default: read from a .pt2's dims, else found by running the model].")
@click.option("--static-size", callback=_hw, metavar="HxW",
              help="TorchScript/.pt2: export a fixed-size graph (models with adaptive pooling "
                   "to fixed bins, e.g. PSPNet, UPerNet); runtimes resize images to it.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: when the output is a terminal].")
def command(source: str, output: str | None, opset: str, fp16: bool, fp16_bound: float,
            with_preprocess: bool, with_argmax: bool, argmax_dtype: str | None,
            check_sizes: tuple[str, ...],
            max_side: int, data: str | None, trt_check: bool, trust_code: bool,
            classes: list[str] | None, num_classes: int | None, mean: list[float] | None,
            std: list[float] | None, in_channels: int | None, stride: int | None,
            size_multiple: int | None, static_size: tuple[int, int] | None,
            channels: str | None, threshold: float | None, progress: bool | None) -> None:
    """Export a checkpoint (or --trust-code TorchScript / .pt2) to ONNX and check it.

    Every export is verified: onnx.checker, shape inference, TensorRT's operator list, and
    ONNX Runtime vs PyTorch at several sizes (FP32) and on real images (FP16). A failed
    check writes nothing and exits 1.

    \b
    segdeploy export unet.pt                      -> unet.onnx, unet.fp16.onnx
    segdeploy export unet.pt --opset 17 --no-fp16 -> for TensorRT 8.5/8.6
    segdeploy export unet.pt --with-argmax        -> + a uint8 `mask` output
    segdeploy export model.ts --trust-code --classes bg,cell --mean 0.5 --std 0.25 --in-channels 1
    segdeploy export fpn.pt2 --trust-code --size-multiple 32 --data photos/
    segdeploy export pspnet.ts --trust-code --static-size 512x512
    """
    from rich.console import Console

    from segdeploy.export.pipeline import ExportOptions, run_export
    from segdeploy.export.sources import SourceFacts

    with_argmax = with_argmax or argmax_dtype is not None  # a dtype asks for the mask
    console = Console(stderr=True)
    if not console.is_terminal:  # logs and CI: wide enough for the parity table
        console = Console(stderr=True, width=120)
    show = console.is_terminal if progress is None else progress
    facts = SourceFacts(classes=classes, num_classes=num_classes, mean=mean, std=std,
                        in_channels=in_channels, stride=stride, size_multiple=size_multiple,
                        static_size=static_size, threshold=threshold)
    options = ExportOptions(output=output, opset=int(opset), fp16=fp16, fp16_bound=fp16_bound,
                            with_preprocess=with_preprocess, with_argmax=with_argmax,
                            argmax_dtype=argmax_dtype,
                            check_sizes=list(check_sizes) or None, max_side=max_side,
                            trust_code=trust_code, facts=facts, data=data,
                            channels=channels, trt_check=trt_check)
    result = run_export(source, options, console=console, progress=show)
    t = result.timings
    click.echo(f"wrote {result.onnx_path} (fp32, opset {options.opset})")
    if result.fp16_path is not None:
        kept = result.info_fp16.fp32_nodes if result.info_fp16 else {}
        why = "; ".join(f"{name}: {reason}" for name, reason in list(kept.items())[:3])
        more = f" and {len(kept) - 3} more (see the .parity.json)" if len(kept) > 3 else ""
        click.echo(f"wrote {result.fp16_path} (mixed fp16, {len(kept)} node(s) kept fp32"
                   + (f": {why}{more})" if kept else ")"))
    click.echo(f"wrote {result.parity_path} (parity passed; export "
               f"{t.get('export_fp32', 0):.1f} s, total {t.get('total', 0):.1f} s)")
