"""`segdeploy train ARCH --data NAME|PATH`: train a reference model, keep the best checkpoint."""

from __future__ import annotations

import click

from segdeploy.training.config import TrainConfig, parse_size


def _size(ctx: click.Context, param: click.Parameter, value: str | None):
    from segdeploy.errors import SegdeployError

    try:
        return parse_size(value)
    except SegdeployError as exc:
        raise click.BadParameter(str(exc)) from None


def _pair(option: str):
    def parse(ctx: click.Context, param: click.Parameter, value: str | None):
        from segdeploy.errors import SegdeployError
        from segdeploy.training.config import parse_pair

        if value is None:
            return None
        try:
            return parse_pair(value, option)
        except SegdeployError as exc:
            raise click.BadParameter(str(exc)) from None
    return parse


@click.command("train")
@click.argument("arch")
@click.option("--data", "-d", required=True,
              help="Built-in dataset (brain, nuclei) or a folder of images + PNG masks.")
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", "-b", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Peak learning rate, cosine-decayed per step [default: 1e-3 Adam, 1e-2 SGD].")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam",
              show_default=True, help="AdamW, or SGD with momentum 0.9.")
@click.option("--weight-decay", default=1e-4, show_default=True, type=click.FloatRange(min=0))
@click.option("--width", type=click.FloatRange(min=0, min_open=True),
              help="Channel multiplier (1.0 = the paper's model) [default: the model's].")
@click.option("--image-size", default="160", show_default=True, callback=_size,
              help="Training crop: one side (160), HxW (160x224), or 'full' images.")
@click.option("--num-classes", type=click.IntRange(min=1),
              help="Class count, at least the largest mask id + 1 [default: from "
                   "labelmap.txt, classes.txt or the ids in the masks].")
@click.option("--channels", type=click.Choice(["grey", "grey3", "rgb"]),
              help="How images are fed [default: the dataset's].")
@click.option("--loss", type=click.Choice(["ce", "dice", "ce+dice"]), default="ce",
              show_default=True, help="Every loss ignores mask pixels of value 255.")
@click.option("--batch-norm/--no-batch-norm", default=None,
              help="Batch norm after each conv, for models that offer it [default: the model's].")
@click.option("--backbone-weights", type=click.Path(dir_okay=False),
              help="torchvision-format VGG16/ResNet-18 state dict to start the encoder from.")
@click.option("--workers", default=0, show_default=True, type=click.IntRange(min=0),
              help="DataLoader worker processes (0: load in the training process).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Best checkpoint (by val mIoU) [default: ARCH.pt]; the last epoch goes to "
                   "<stem>.last.pt.")
@click.option("--resume", type=click.Path(dir_okay=False),
              help="Continue from a <stem>.last.pt checkpoint (model options come from it; "
                   "-o defaults to <stem>.pt).")
@click.option("--limit-train", type=click.IntRange(min=1),
              help="Smoke runs: use only the first N training images.")
@click.option("--limit-val", type=click.IntRange(min=1),
              help="Smoke runs: use only the first N validation images.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: when the output is a terminal].")
@click.option("--hflip/--no-hflip", default=True, show_default=True,
              help="Random horizontal flips. A flip swaps left and right: turn it off when "
                   "labels depend on the side (left / right hemisphere, left / right lung).")
@click.option("--vflip/--no-vflip", default=False, show_default=True,
              help="Random vertical flips (microscopy, aerial images: no up or down).")
@click.option("--scale", metavar="MIN,MAX", callback=_pair("--scale"),
              help="Random scale range, e.g. 0.8,1.2; 1,1 turns scaling off [default: "
                   "0.75,1.25 for crops, none for full images].")
@click.option("--intensity-window", metavar="LO,HI", callback=_pair("--intensity-window"),
              help="Map 16-bit / float pixel values LO..HI to 0..255 (CT: -100,300) "
                   "[default: the training split's 0.5-99.5 percentiles]. Recorded in the "
                   "checkpoint and applied by eval, verify, export and predict.")
def command(arch: str, data: str, **options) -> None:
    """Train ARCH (fcn8s, unet, ...) on a dataset; print per-epoch validation metrics.

    Runs unchanged under `torchrun --nproc_per_node N` (DistributedDataParallel: gloo on
    CPU, nccl on GPU; rank 0 prints and writes checkpoints).

    \b
    segdeploy train unet --data brain --width 0.25 --epochs 20
    torchrun --nproc_per_node 2 -m segdeploy train unet --data brain
    """
    from segdeploy.training.loop import train

    train(TrainConfig(arch=arch, data=data, **options))  # rank 0 prints the best mIoU
