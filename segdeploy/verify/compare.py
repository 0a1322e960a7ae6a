"""`segdeploy verify`: PyTorch and an engine on the same real images at several sizes.

The dataset's images are resized to each size (image bilinear, mask nearest), fed to the
checkpoint's PyTorch model and to the engine as the very same tensor, and compared by
`parity.SizeComparison`. The engine is opened through the runtime (ONNX Runtime for .onnx,
TensorRT for a plan), so this checks what applications will run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.artifacts import is_onnx
from segdeploy.errors import UsageError
from segdeploy.manifest import ModelCard
from segdeploy.precision import Precision
from segdeploy.runtime.preprocess import PadLayout, SizeBox, reflect_pad
from segdeploy.verify.parity import SizeComparison, Thresholds, check_thresholds
from segdeploy.verify.worst import WorstImages

DEFAULT_MAX_IMAGES = 16


def resize_pair(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """HxWxC uint8 image (bilinear) and HxW mask (nearest) resized to size = (H, W)."""
    from PIL import Image

    h, w = size
    if image.shape[:2] == (h, w):
        return image, mask
    planes = [np.asarray(Image.fromarray(image[:, :, c]).resize((w, h),
                                                                   Image.Resampling.BILINEAR))
              for c in range(image.shape[2])]
    resized = np.stack(planes, axis=2)
    m = np.asarray(Image.fromarray(mask).resize((w, h), Image.Resampling.NEAREST))
    return resized, m


def default_sizes(native: tuple[int, int], card: ModelCard,
                  max_size: tuple[int | None, int | None] = (None, None)) -> list[tuple[int, int]]:
    """The data's own size, a smaller and a larger odd size, each made valid for the model."""
    h, w = native
    out: list[tuple[int, int]] = []
    for f in (1.0, 0.6, 1.3):
        size = fit_size((int(h * f) | 1, int(w * f) | 1), card, max_size)
        if size not in out:
            out.append(size)
    return out


def fit_size(size: tuple[int, int], card: ModelCard,
             max_size: tuple[int | None, int | None] = (None, None)) -> tuple[int, int]:
    """Raise to min_size, round up to size_multiple, clamp to an engine's largest profile."""
    return card.fit_size(size[0], size[1], max_size=max_size)


def check_size(size: tuple[int, int], card: ModelCard) -> None:
    h, w = size
    if not card.accepts_size(h, w):
        raise UsageError(f"size {h}x{w} does not suit {card.arch}",
                         expected=card.size_rule(), fix="choose other --sizes")


def label_offset(card: ModelCard, in_hw: tuple[int, int], out_hw: tuple[int, int]
                 ) -> tuple[int, int]:
    """Where output pixel (0, 0) sits in the input: 0 for "same" models; the valid U-Net's
    fixed margin (segdeploy.geometry), else a centred output."""
    if out_hw == in_hw:
        return 0, 0
    if card.arch.startswith("unet_valid"):
        from segdeploy.geometry import unet_valid_margin

        m = unet_valid_margin(int(card.config.get("depth", 4)))
        return m, m
    return (in_hw[0] - out_hw[0]) // 2, (in_hw[1] - out_hw[1]) // 2


def _pick(n: int, k: int) -> list[int]:
    """k indices spread evenly over range(n) (variety beats the first k neighbouring slices)."""
    if k >= n:
        return list(range(n))
    return sorted({int(round(i * (n - 1) / max(k - 1, 1))) for i in range(k)})


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def judged_precision(graph: str, computed: str | None) -> str:
    """The precision a run is judged by: the graph's, or a lower one the runtime computed in
    (an FP32 graph that OpenVINO ran in bf16 is judged like fp16)."""
    if graph == Precision.FP32 and computed in ("bf16", "fp16"):
        return computed
    return graph


def run_verify(checkpoint: str | Path, engine: str | Path, *, data: str | None = None,
               split: str = "val", sizes: Sequence[tuple[int, int]] | None = None,
               max_images: int = DEFAULT_MAX_IMAGES, batch_size: int = 1,
               min_agreement: float | None = None, max_miou_drop: float | None = None,
               threads: int | None = None, progress: bool = True, backend: str | None = None,
               precision: str | None = None, pad_to_stride: bool = True,
               classes_by_count: bool = False, worst: WorstImages | None = None
               ) -> dict[str, Any]:
    """Compare checkpoint and engine; return the JSON-ready report (`passed` says the verdict).
    `worst`, when given, collects the images (and both masks) that agree least, for
    `segdeploy.verify.html_page`.

    The gate follows what ran: an INT8 graph by the int8 gate, OpenVINO's bf16 like fp16.
    With `pad_to_stride` ("same" models), each resized batch is reflect-padded bottom/right
    to a multiple of the output stride, as `Segmenter` and `segdeploy eval` do, fed to both
    sides, and the logits are cropped back to the size before they are compared."""
    from segdeploy.data import dataset_for_model
    from segdeploy.reference_models.checkpoint import load_model
    from segdeploy.runtime import Segmenter

    if max_images < 1 or batch_size < 1:
        raise UsageError(f"--max-images {max_images} / --batch-size {batch_size}",
                         expected="at least 1 each")
    model, card = load_model(checkpoint)
    engine = Path(engine)
    # verify measures a backend's INT8 agreement itself: no refusal at load
    seg = Segmenter.load(engine, threads=threads, backend=backend, precision=precision,
                         crosscheck=False) \
        if is_onnx(engine) else Segmenter.load(engine, backend=backend)
    try:
        info = seg.info
        notes = _compatibility_notes(card, info, Path(checkpoint))
        precision, judged = _precisions(engine, seg, notes)
        thresholds = Thresholds.for_precision(judged, min_agreement=min_agreement,
                                              max_miou_drop=max_miou_drop)
        dataset = dataset_for_model(card, data, split, classes_by_count=classes_by_count)
        name = data or dataset.name
        indices = _pick(len(dataset), max_images)
        if not indices:
            raise UsageError(f"dataset {name!r} ({split}) has no images",
                             fix="choose another --data or --split")
        pairs = [dataset[i] for i in indices]
        sizes = _sizes(sizes, seg, card, pairs[0][0].shape[:2], engine.name)
        results = []
        with _progress(progress, len(sizes) * len(pairs)) as advance:
            for size in sizes:
                r = _compare_size(model, seg, card, pairs, size, batch_size=batch_size,
                                  pad_to_stride=pad_to_stride, advance=advance,
                                  worst=worst, indices=indices)
                r["failures"] = check_thresholds(r, thresholds)
                results.append(r)
    finally:
        seg.close()
    return {
        "checkpoint": str(checkpoint), "engine": str(engine), "engine_name": engine.name,
        "backend": seg.runner.name, "precision": precision, "judged_as": judged,
        "arch": card.arch,
        "classes": list(card.classes), "data": name, "split": split,
        "images": len(pairs), "thresholds": thresholds.to_dict(), "sizes": results,
        "pad_to_stride": bool(pad_to_stride and card.output_mode == "same"),
        "passed": not any(r["failures"] for r in results), "notes": notes,
    }


def _precisions(engine: Path, seg: Any, notes: list[str]) -> tuple[str, str]:
    """(the graph's precision, the one it is judged by): QDQ nodes or float16 tensors win over
    the ONNX label (a mismatch is noted); OpenVINO's bf16 over an fp32 graph is judged fp16."""
    precision = seg.info.precision
    if is_onnx(engine):
        from segdeploy.onnx_precision import effective_precision

        precision, note = effective_precision(engine, seg.info.precision)
        notes += [note] if note else []
    return precision, judged_precision(precision,
                                       getattr(seg.runner, "inference_precision", None))


def _sizes(sizes: Sequence[tuple[int, int]] | None, seg: Any, card: ModelCard,
           native: tuple[int, int], name: str) -> list[tuple[int, int]]:
    """The sizes to compare at: a fixed-size graph's own size, else the given or default
    sizes, each checked against the model."""
    if seg.static_size is not None:
        if sizes and any(tuple(s) != seg.static_size for s in sizes):
            raise UsageError(f"--sizes {list(sizes)} but {name} is a fixed "
                             f"{seg.static_size[0]}x{seg.static_size[1]} graph",
                             fix="drop --sizes (its size is used)")
        return [seg.static_size]
    out = list(sizes) if sizes else default_sizes(native, card, seg.max_size)
    for size in out:
        check_size(size, card)
    return out


def _compare_size(model: Any, seg: Any, card: ModelCard, pairs: list[Any],
                  size: tuple[int, int], *, batch_size: int, pad_to_stride: bool,
                  advance: Any, worst: WorstImages | None = None,
                  indices: Sequence[int] = ()) -> dict[str, Any]:
    """PyTorch and the engine on the same images resized to `size`; the size's numbers
    (and the worst images offered to `worst`: cropped to the masks' area)."""
    import torch

    from segdeploy.runtime.preprocess import to_model_input

    info = seg.info
    spec = seg.runner.input_specs()[info.input_name]
    layout = info.input_layout.upper() if np.dtype(spec.dtype) == np.uint8 else "NCHW"
    logits_name = next(n for n in info.output_names if n != "mask")
    comp = SizeComparison(size, card.num_classes, threshold=card.threshold)
    for start in range(0, len(pairs), batch_size):
        chunk = [resize_pair(im, m, size) for im, m in pairs[start:start + batch_size]]
        images = _stride_pad(np.stack([c[0] for c in chunk]), card, seg.max_size,
                             pad_to_stride and seg.static_size is None)
        masks = np.stack([c[1] for c in chunk])
        x = to_model_input(images, dtype=np.dtype(np.float32), layout="NCHW", mean=card.mean,
                           std=card.std)
        feed = x if np.dtype(spec.dtype) == np.float32 else to_model_input(
            images, dtype=spec.dtype, layout=layout, mean=card.mean, std=card.std)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).float().numpy()
        eng = seg.runner.infer({info.input_name: feed},
                               output_names=[logits_name])[logits_name]
        if images.shape[1:3] != tuple(size):  # stride padding: crop back
            ref, eng = ref[..., :size[0], :size[1]], eng[..., :size[0], :size[1]]
        oy, ox = label_offset(card, size, ref.shape[-2:])
        labels = masks[:, oy:oy + ref.shape[2], ox:ox + ref.shape[3]]
        ref_masks, eng_masks = comp.add(ref, eng, labels)
        if worst is not None:
            shown = np.stack([c[0] for c in chunk])[:, oy:oy + ref.shape[2],
                                                     ox:ox + ref.shape[3]]
            worst.add(indices[start:start + len(chunk)], size, shown, ref_masks, eng_masks)
        advance(len(chunk), f"{size[0]}x{size[1]}")
    return comp.result()


def _stride_pad(images: np.ndarray, card: ModelCard,
                max_size: tuple[int | None, int | None], enabled: bool) -> np.ndarray:
    """Reflect-pad an N x H x W x C batch bottom/right to card.aligned_size (a multiple of
    the output stride), unless disabled, "valid", or beyond the engine's largest profile."""
    h, w = images.shape[1:3]
    if not enabled or card.output_mode != "same":
        return images
    th, tw = card.aligned_size(h, w)
    if any(hi is not None and t > hi for t, hi in zip((th, tw), max_size, strict=True)):
        return images
    return reflect_pad(images, PadLayout(0, th - h, 0, tw - w, SizeBox()))


def _compatibility_notes(card: ModelCard, info: Any, checkpoint: Path) -> list[str]:
    """Refuse an engine of another model; note an engine exported from other weights."""
    other = info.card
    carded = (other.config or {}).get("source") == "segdeploy card"
    if other.num_classes != card.num_classes or (other.arch != card.arch and not carded):
        raise UsageError(f"the engine is a {other.arch} with {other.num_classes} classes but "
                         f"the checkpoint is a {card.arch} with {card.num_classes}",
                         expected="an engine exported from this checkpoint",
                         fix="pass the matching checkpoint and engine")
    notes = []
    if info.source_sha256 and info.source_sha256 != _sha256(checkpoint):
        notes.append("the engine records another source checkpoint (sha256 "
                     f"{info.source_sha256[:12]}...): it may come from other weights")
    return notes


class _progress:
    """A rich progress bar over images x sizes; `advance(n, label)` moves it."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.enabled, self.total = enabled, total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda n, label: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(TextColumn("verify {task.description}"), BarColumn(),
                            MofNCompleteColumn(), console=Console(stderr=True), transient=True)
        self.bar.__enter__()
        task = self.bar.add_task("", total=self.total)
        return lambda n, label: self.bar.update(task, advance=n, description=label)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)
