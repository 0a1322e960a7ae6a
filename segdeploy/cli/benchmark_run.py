"""`segdeploy benchmark`'s work: every format's artifact, its masks scored against PyTorch
and the labels, then all formats timed together.

Accuracy: PyTorch (the checkpoint, CPU) predicts the validation images once; each format's
masks come from `Segmenter.predict` on the same images; argmax agreement is against the
PyTorch masks, mIoU against the labels (`export.int8_gate.judge`), and the status follows
the precision's gate (`comparison.Thresholds`). Speed: every format that ran, PyTorch
included, is timed round-robin (`segdeploy.interleave`), one image per call, cycling through the
images, so a busy machine slows every row alike.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.bench import format_results as fr
from segdeploy.bench.formats import FORMATS, Format, select_formats, why_unavailable
from segdeploy.cli.benchmark_artifacts import ArtifactMaker, MakeOptions
from segdeploy.errors import UsageError, first_line


@dataclass
class BenchmarkOptions:
    data: str
    formats: list[str] | None = None
    #: the artifacts' folder [default: CHECKPOINT's folder / NAME-benchmark]
    out: str | None = None
    images: int = 16
    warmup: int = 3
    iterations: int | None = None
    duration: float | None = 3.0
    threads: int | None = None
    make: MakeOptions | None = None
    progress: bool = False
    #: the format table (tests add doubles to it)
    table: Sequence[Format] = field(default_factory=lambda: FORMATS)


@dataclass
class _Ready:
    """A format that loaded: its row and what times it."""

    row: fr.FormatRow
    predict: Callable[[np.ndarray], np.ndarray]
    close: Callable[[], None] = lambda: None
    masks: list[np.ndarray] = field(default_factory=list)


def default_folder(checkpoint: Path) -> Path:
    return checkpoint.parent / f"{checkpoint.name.removesuffix(checkpoint.suffix)}-benchmark"


def run_benchmark(checkpoint: str | Path, options: BenchmarkOptions) -> fr.BenchmarkResult:
    """Make or reuse every artifact, score and time every format; never raises for one
    format (its row says why), only for bad input (checkpoint, data, options)."""
    from segdeploy.bench.environment import collect_environment
    from segdeploy.bench.timing import check_loop_settings
    from segdeploy.reference_models.checkpoint import load_model

    check_loop_settings(options.warmup, options.iterations, options.duration)
    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise UsageError(f"checkpoint {ckpt} does not exist", expected="a segdeploy .pt file",
                         fix="train one with `segdeploy train` or check the path")
    folder = Path(options.out) if options.out else default_folder(ckpt)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create the output folder {folder} ({exc})",
                         fix="pass --out with a folder you can write to") from None
    chosen = _choose(options)
    model, card = load_model(ckpt)
    images, labels = _validation(options.data, card, options.images)
    make = options.make or MakeOptions(data=options.data, threads=options.threads)
    with _progress(options.progress) as bar:
        task = bar.add_task("preparing", total=len(chosen) + 4)
        say = (lambda text: bar.update(task, description=text))  # noqa: E731
        maker = ArtifactMaker(ckpt, folder, make, say)
        runnable = [f for f in chosen if why_unavailable(f) is None]
        arts = maker.make({f.artifact for f in runnable})
        bar.advance(task, 2)
        say("PyTorch reference masks")
        reference = _pytorch(ckpt, model, card, images, labels, options.threads)
        bar.advance(task)
        rows: list[fr.FormatRow] = [reference.row]
        ready = [reference]
        try:
            for fmt in chosen:
                say(f"accuracy of {fmt.key}")
                row, loaded = _score(fmt, arts, images, labels, reference, card.num_classes,
                                     options.threads)
                rows.append(row)
                if loaded is not None:
                    ready.append(loaded)
                bar.advance(task)
            say(f"timing {len(ready)} formats round-robin")
            _time(ready, images, options)
            bar.advance(task)
        finally:
            for item in ready:
                item.close()
    for row in rows[1:]:
        key = next(f.artifact for f in chosen if f.key == row.format)
        row.info["reused"] = key in arts.reused
    return fr.BenchmarkResult(
        checkpoint=str(ckpt), data=options.data, images=len(images),
        image_size=list(images[0].shape[:2]), environment=collect_environment(options.threads),
        settings={"warmup": options.warmup, "iterations": options.iterations,
                  "duration_s": options.duration, "threads": options.threads,
                  "folder": str(folder), "opset": make.opset, "with_argmax": make.with_argmax,
                  "argmax_dtype": make.argmax_dtype, "channels": card.in_channels,
                  "timing": "interleaved round-robin, one image per call",
                  "arch": card.arch},
        rows=rows)


def _choose(options: BenchmarkOptions) -> list[Format]:
    table = list(options.table)
    if options.table is FORMATS:
        return select_formats(options.formats)
    wanted = set(options.formats or [f.key for f in table])
    return [f for f in table if f.key in wanted]


def _validation(data: str, card: Any, limit: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    from segdeploy.export.int8_gate import load_split
    from segdeploy.manifest import ExportInfo

    pairs = load_split(data, ExportInfo(card=card), "val", limit)
    return [im for im, _ in pairs], [m for _, m in pairs]


def _pytorch(ckpt: Path, model: Any, card: Any, images: list[np.ndarray],
             labels: list[np.ndarray], threads: int | None) -> _Ready:
    """The reference: PyTorch eager on the CPU, its masks and mIoU."""
    import torch

    from segdeploy.comparison import class_map
    from segdeploy.metrics import ConfusionMatrix
    from segdeploy.training.evaluate import Geometry, predict_logits

    if threads:
        torch.set_num_threads(threads)
    geometry, cpu = Geometry.of(card), torch.device("cpu")

    def predict(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = predict_logits(model, image, card.mean, card.std, geometry, cpu)
        return class_map(logits.numpy(), card.threshold)[0].astype(np.uint8)

    masks = [predict(im) for im in images]
    cm = ConfusionMatrix(card.num_classes)
    for mask, label in zip(masks, labels, strict=True):
        cm.update(mask, label)
    miou = 100.0 * (cm.compute()["mean_iou"] or 0.0)
    row = fr.FormatRow("pytorch", "PyTorch", "fp32", fr.REFERENCE, file=str(ckpt),
                       size_mb=ckpt.stat().st_size / 1e6, agreement=100.0, miou=miou,
                       miou_drop=0.0)
    return _Ready(row, predict, masks=masks)


def _score(fmt: Format, arts: Any, images: list[np.ndarray], labels: list[np.ndarray],
           reference: _Ready, num_classes: int, threads: int | None
           ) -> tuple[fr.FormatRow, _Ready | None]:
    """One format's row: not available / export failed / run failed, or its accuracy and
    a loaded Segmenter to time."""
    from segdeploy.comparison import Thresholds
    from segdeploy.export.int8_gate import judge

    row = fr.FormatRow(fmt.key, fmt.label, fmt.precision, fr.NOT_AVAILABLE)
    why = why_unavailable(fmt)
    if why is not None:
        row.reason = why
        return row, None
    path = arts.paths.get(fmt.artifact)
    if path is None:
        row.status, row.reason = fr.EXPORT_FAILED, arts.failed.get(fmt.artifact, "not made")
        return row, None
    row.file, row.size_mb = str(path), path.stat().st_size / 1e6
    thresholds = Thresholds.for_precision(fmt.precision)
    row.gate = thresholds.to_dict()
    seg = None
    try:
        seg = _load(fmt, path, threads)
        masks = [seg.predict(im) for im in images]
    except Exception as exc:  # noqa: BLE001 - any backend failure is this row's, not fatal
        if seg is not None:
            seg.close()
        row.status, row.reason = fr.RUN_FAILED, first_line(exc, limit=200)
        return row, None
    gate = judge(reference.masks, masks, labels, num_classes)
    row.agreement, row.miou, row.miou_drop = gate.agreement, gate.miou_int8, gate.miou_drop
    used = getattr(seg.runner, "inference_precision", None)
    if used is not None:
        row.info["inference_precision"] = used
    if gate.passes(thresholds.min_agreement, thresholds.max_miou_drop):
        row.status = fr.OK
    else:
        row.status, row.reason = fr.GATE_FAILED, _gate_reason(gate, thresholds)
    return row, _Ready(row, seg.predict, seg.close)


def _load(fmt: Format, path: Path, threads: int | None) -> Any:
    """Segmenter on this format's backend; OpenVINO's INT8 self-check is off: the gate
    measures the same thing against PyTorch."""
    from segdeploy.runtime import Segmenter
    from segdeploy.runtime.backends import get_backend

    kw: dict[str, Any] = dict(fmt.options)
    if threads and "threads" in get_backend(fmt.backend).accepted_options:
        kw["threads"] = threads
    return Segmenter.load(path, backend=fmt.backend, crosscheck=False, **kw)


def _gate_reason(gate: Any, t: Any) -> str:
    why = []
    if gate.agreement < t.min_agreement:
        why.append(f"agreement {gate.agreement:.2f}% < {t.min_agreement:g}%")
    if t.max_miou_drop is not None and gate.miou_drop > t.max_miou_drop:
        why.append(f"mIoU drop {gate.miou_drop:.2f} > {t.max_miou_drop:g}")
    return ", ".join(why)


def _time(ready: list[_Ready], images: list[np.ndarray], options: BenchmarkOptions) -> None:
    """Round-robin timing of every loaded format; p50 ms and images/s into their rows."""
    from segdeploy.bench.timing import summarize
    from segdeploy.interleave import measure_round_robin

    def cycling(predict: Callable[[np.ndarray], np.ndarray]) -> Callable[[], object]:
        feed = itertools.cycle(images)
        return lambda: predict(next(feed))

    fns = [cycling(item.predict) for item in ready]
    try:
        samples = measure_round_robin(fns, warmup=options.warmup,
                                      iterations=options.iterations,
                                      duration=options.duration, min_iterations=len(images))
    except Exception as exc:  # noqa: BLE001 - find the format that broke, time the rest
        bad = _first_failing(ready, images[0])
        if bad is None:
            raise
        bad.row.status, bad.row.reason = fr.RUN_FAILED, first_line(exc, limit=200)
        ready.remove(bad)
        bad.close()
        _time(ready, images, options)
        return
    for item, s in zip(ready, samples, strict=True):
        stats = summarize(s)
        item.row.p50_ms, item.row.images_per_s = stats.median_ms, stats.throughput
        item.row.samples_ms = [float(v) * 1e3 for v in s]


def _first_failing(ready: list[_Ready], image: np.ndarray) -> _Ready | None:
    for item in ready:
        try:
            item.predict(image)
        except Exception:  # noqa: BLE001
            return item
    return None


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                  disable=not enabled) as bar:
        yield bar

