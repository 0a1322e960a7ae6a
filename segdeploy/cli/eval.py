"""`segdeploy eval CKPT --data NAME|PATH`: FCN-paper metrics of a checkpoint on a split."""

from __future__ import annotations

import click


@click.command("eval")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--data", "-d",
              help="Built-in dataset or folder [default: the dataset the checkpoint was "
                   "trained on].")
@click.option("--split", type=click.Choice(["train", "val"]), default="val", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Score only the first N images.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the metrics and the confusion matrix to this JSON file.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar [default: when the output is a terminal].")
@click.option("--pad-to-stride/--no-pad-to-stride", default=True, show_default=True,
              help="Reflect-pad each image to a multiple of the model's output stride and "
                   "crop back (as `segdeploy predict`); --no-pad-to-stride pads only to "
                   "what the model requires.")
@click.option("--classes-by-count", is_flag=True,
              help="Accept data whose class names differ from the model's when the counts "
                   "match (the same ids mean the same classes).")
@click.option("--crf", is_flag=True,
              help="Also score the masks after the dense CRF (the card's tuned parameters, "
                   "else defaults) and print both rows with boundary F.")
def command(checkpoint: str, data: str | None, split: str, device: str, limit: int | None,
            json_path: str | None, progress: bool | None, pad_to_stride: bool,
            classes_by_count: bool, crf: bool) -> None:
    """Evaluate CHECKPOINT at full image size: pixel accuracy, mean accuracy, mean IU,
    frequency weighted IU, per-class IoU and Dice.

    Models with output_mode "valid" (unet_valid) get their input padded by reflection so the
    output covers the whole image (overlap-tile); no centre crop of the mask is scored.
    """
    import math
    import time

    from rich.console import Console
    from rich.progress import Progress

    from segdeploy.atomic import probe_writable, write_json_atomic
    from segdeploy.data import dataset_for_model
    from segdeploy.reference_models.checkpoint import load_model
    from segdeploy.training.distributed import DistInfo, resolve_device
    from segdeploy.training.evaluate import Geometry, evaluate
    from segdeploy.training.report import metrics_tables

    if json_path:
        probe_writable(json_path)  # before the evaluation: a full disk is found now
    console = Console()
    dev = resolve_device(device, DistInfo())
    model, card = load_model(checkpoint, map_location=dev)
    ds = dataset_for_model(card, data, split, classes_by_count=classes_by_count)
    geometry = Geometry.of(card, pad_to_stride=pad_to_stride)
    data = data or ds.name
    indices = list(range(len(ds)))[:limit]
    show = console.is_terminal if progress is None else progress
    crf_pass = None
    if crf:
        from segdeploy.cli.eval_crf import CRFScoring

        crf_pass = CRFScoring(card, lambda m: console.print(f"note: {m}", highlight=False))
    t0 = time.perf_counter()
    with Progress(console=console, disable=not show, transient=True) as bar:
        task = bar.add_task(f"eval {split}", total=len(indices))
        cm, _, _ = evaluate(model, ds, indices, num_classes=card.num_classes, mean=card.mean,
                            std=card.std, geometry=geometry, device=dev,
                            on_step=lambda: bar.update(task, advance=1), on_logits=crf_pass)
    seconds = time.perf_counter() - t0
    metrics = cm.compute()
    title = f"{card.arch} on {data} ({split}, {len(indices)} images, {seconds:.1f} s)"
    for table in metrics_tables(metrics, card.classes, title=title):
        console.print(table)
    crf_record = crf_pass.report(console, metrics) if crf_pass is not None else None
    if json_path:
        write_json_atomic(json_path, {
            "checkpoint": str(checkpoint), "arch": card.arch, "data": data, "split": split,
            "images": len(indices), "classes": card.classes, "metrics": metrics,
            "confusion_matrix": cm.matrix.tolist(), "seconds": round(seconds, 3),
            "input_padding": ("reflect, overlap-tile (output covers the whole image)"
                              if card.output_mode == "valid" else
                              f"reflect, bottom/right, to min_size and multiples of "
                              f"{math.lcm(geometry.size_multiple, geometry.stride)}"),
            "intensity": card.intensity_mapping().to_dict(),
            **({"crf": crf_record} if crf_record is not None else {}),
        })
        console.print(f"metrics written to {json_path}", highlight=False)
