"""`segdeploy crf-tune MODEL --data DATA`: tune the dense CRF on a validation split and store
the parameters in MODEL's card when they beat no CRF on mIoU (segdeploy/crf_tuning.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from segdeploy.cli.choices import backend_choice


@click.command("crf-tune")
@click.argument("model", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--data", "-d", help="Built-in dataset or folder [default: the dataset the "
                                   "model was trained on].")
@click.option("--split", type=click.Choice(["train", "val"]), default="val", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use only the first N images.")
@click.option("--time-budget", type=click.FloatRange(min=1), default=300.0, show_default=True,
              metavar="SECONDS", help="Stop searching after this long (all searches).")
@click.option("--max-trials", type=click.IntRange(min=1), default=40, show_default=True,
              help="Parameter sets tried per search.")
@click.option("--min-gain", type=click.FloatRange(min=0), default=0.001, show_default=True,
              help="Write only when the tuned CRF's mIoU beats no CRF by more than this.")
@click.option("--engine", type=click.Choice(["auto", "pydensecrf2", "numpy"]), default="auto",
              show_default=True, help="CRF implementation (auto: pydensecrf2 if installed).")
@click.option("--holdout/--no-holdout", default=True, show_default=True,
              help="Also search on each half of the images and score the other half: the "
                   "parameters are stored only if they help on images they were not tuned "
                   "on too (two more searches, on half the images each).")
@click.option("--dry-run", is_flag=True, help="Search and report; leave the card as it is.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False),
              help="Also write the scores and every trial to this JSON file.")
@click.option("--backend", type=backend_choice(), default=None,
              help="Default: from the file suffix (.onnx: ONNX Runtime).")
@click.option("--classes-by-count", is_flag=True,
              help="Accept data whose class names differ from the model's when the counts "
                   "match.")
def command(model: Path, data: str | None, split: str, limit: int | None, time_budget: float,
            max_trials: int, min_gain: float, engine: Any, holdout: bool, dry_run: bool,
            json_path: str | None, backend: str | None, classes_by_count: bool) -> None:
    """Search the dense CRF's parameters (bilateral and Gaussian kernels, iterations) for
    MODEL on a validation split; store them in MODEL's card (the .onnx metadata, or a plan's
    .plan.json) only if they raise mIoU over no CRF. `predict --crf` then uses them.

    \b
    segdeploy crf-tune fcn32s.onnx --data brain --time-budget 120
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from segdeploy import crf_tuning as ct
    from segdeploy.atomic import probe_writable, write_json_atomic
    from segdeploy.data import dataset_for_model
    from segdeploy.runtime import Segmenter

    if json_path:
        probe_writable(json_path)
    console = Console(stderr=True)
    with Segmenter.load(model, backend=backend) as seg:
        ds = dataset_for_model(seg.card, data, split, classes_by_count=classes_by_count)
        indices = list(range(len(ds)))[:limit]
        with Progress("[progress.description]{task.description}", BarColumn(),
                      MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                      transient=True) as bar:
            task = bar.add_task(f"model on {len(indices)} images", total=len(indices))
            samples = ct.collect(seg, ds, indices, lambda: bar.advance(task))
            searches = 3 if holdout and len(samples) >= 2 else 1
            search = bar.add_task("CRF trials", total=max_trials * searches)
            done = [0, 0]  # trials of the searches before the current one, last trial seen

            def on_trial(n: int, params: Any, scores: Any) -> None:
                if n <= done[1]:  # a new search started
                    done[0] += done[1]
                done[1] = n
                bar.update(search, completed=done[0] + n, description=f"CRF trials (mIoU "
                           f"{scores.mean_iou:.4f}, boundary F {scores.boundary_f:.4f})")

            result = ct.tune_checked(samples, engine=engine, time_budget=time_budget,
                                     max_trials=max_trials, holdout=holdout,
                                     on_trial=on_trial)
        had = seg.card.crf
    name = data or ds.name
    _report(console, result, f"{model.name} on {name} ({split}, {len(indices)} images)")
    entry = ct.card_entry(result, data=str(name), split=split, images=len(indices),
                          engine=engine)
    helps = result.helps(min_gain)
    if helps and not dry_run:
        ct.write_card_crf(model, entry)
        console.print(f"wrote the tuned CRF parameters into {model}'s card "
                      f"({result.params.describe()}); `predict --crf` uses them",
                      highlight=False)
    elif helps:
        console.print("--dry-run: the card is left as it is", highlight=False)
    else:
        held = (f", {result.held_out.mean_iou:.4f} on held-out images"
                if result.held_out is not None else "")
        console.print(f"the CRF does not help this model on {name}: tuned mIoU "
                      f"{result.best.mean_iou:.4f}{held} vs {result.without.mean_iou:.4f} "
                      f"without (needs > +{min_gain:g}); the card is left unchanged"
                      + (" (it keeps the parameters tuned earlier)" if had else ""),
                      highlight=False)
    if json_path:
        write_json_atomic(json_path, {"model": str(model), **entry["tuned_on"],
                                      "defaults": result.defaults.to_dict(),
                                      "params": entry["params"], "helps": helps,
                                      "written": helps and not dry_run,
                                      "stopped_by": result.stopped_by,
                                      "seconds": round(result.seconds, 2),
                                      "trials": result.trials})


def _report(console: Any, result: Any, title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for col in ("masks", "mIoU", "boundary F (2 px)", "pixel acc"):
        table.add_column(col, justify="left" if col == "masks" else "right")
    rows = [("without CRF", result.without), ("CRF, defaults", result.defaults),
            ("CRF, tuned", result.best)]
    if result.held_out is not None:
        rows.append(("CRF, tuned, held out", result.held_out))
    for label, s in rows:
        table.add_row(label, f"{s.mean_iou:.4f}", f"{s.boundary_f:.4f}",
                      f"{s.pixel_accuracy:.4f}")
    console.print(table)
    console.print(f"{len(result.trials)} trials in {result.seconds:.1f} s "
                  f"({result.stopped_by}); tuned: {result.params.describe()}", highlight=False)
