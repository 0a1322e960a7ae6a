"""Does the exported graph compute what the PyTorch model computes? ONNX Runtime vs PyTorch.

FP32 graph, at several input sizes (odd ones included, batch > 1): the logits must agree
to float32 rounding (max |diff| <= FP32_RTOL * max(1, max |logit|)), and the argmax must
agree on every pixel that is not a tie (top-2 margin >= twice that tolerance; closer pixels
may flip under any rounding and are counted separately).

FP16 graph, on real images of the data the model was trained on (the model card's
`trained_on`; synthetic smooth images only when that data is unavailable, and the report
says so): argmax agreement on all pixels >= FP16_MIN_AGREEMENT. The FP16 graph is also run
at the FP32 sizes for information (it must stay finite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from segdeploy.comparison import (
    FP16_MIN_AGREEMENT,
    FP32_RTOL,
    class_map,
    fp32_tolerance,
    logit_errors,
    nontied,
)
from segdeploy.dims import parse_dims
from segdeploy.errors import first_line
from segdeploy.imaging import as_hwc_uint8, normalize
from segdeploy.manifest import ModelCard
from segdeploy.precision import Precision

DEFAULT_CHECK_SIZES = ("1x{c}x97x131", "2x{c}x197x233", "1x{c}x512x512")  # c: the model's
DEFAULT_MAX_SIDE = 1024


@dataclass
class ParityRow:
    """One comparison: a graph, an input set, an output."""

    graph: str  # "fp32" | "fp16"
    inputs: str  # "2x3x197x233" or "brain val x16 (197x233)"
    output: str  # "logits" | "mask"
    max_abs: float | None
    p99_abs: float | None
    argmax_agreement: float
    argmax_agreement_nontied: float
    tied_fraction: float
    pixels: int
    threshold: str
    passed: bool | None  # None: reported for information, not a gate
    seconds: float = 0.0


@dataclass
class ParityReport:
    rows: list[ParityRow] = field(default_factory=list)
    fp16_images: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed is not False for r in self.rows)

    def failures(self) -> list[ParityRow]:
        return [r for r in self.rows if r.passed is False]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "fp16_images": self.fp16_images, "notes": self.notes,
                "thresholds": {"fp32_rtol": FP32_RTOL, "fp16_min_agreement": FP16_MIN_AGREEMENT},
                "rows": [asdict(r) for r in self.rows]}


# ---------------------------------------------------------------------------- input sizes

def parse_sizes(specs: Iterable[str], card: ModelCard) -> tuple[list[tuple[int, int, int]],
                                                                list[str]]:
    """'NxCxHxW' or 'HxW' strings -> [(N, H, W)] valid for the model, plus notes on changes.

    The channel count always comes from the model; sizes below `min_size` are raised to it
    and sizes are rounded up to `size_multiple` where the model needs that.
    """
    out: list[tuple[int, int, int]] = []
    notes: list[str] = []
    for spec in specs:
        nums = parse_dims(spec, ranks=(4, 2), what="check size")
        n, h, w = (1, *nums) if len(nums) == 2 else (nums[0], nums[2], nums[3])
        if len(nums) == 4 and nums[1] != card.in_channels:
            notes.append(f"{spec}: the model takes {card.in_channels} channels; used those")
        static = card.fixed_size()
        fixed = (n, *static) if static else (n, *card.fit_size(h, w))
        if fixed[1:] != (h, w):
            why = ("the graph's static size" if static else
                   f"min size {card.min_size}, multiple of {card.size_multiple}")
            notes.append(f"{spec}: {h}x{w} adjusted to {fixed[1]}x{fixed[2]} ({why})")
        if fixed not in out:
            out.append(fixed)
    return out, notes


def default_sizes(card: ModelCard, max_side: int = DEFAULT_MAX_SIDE) -> list[str]:
    c = card.in_channels
    static = card.static_size
    if static:  # a fixed-size graph: batch 1 and 2 at its size
        return [f"1x{c}x{static[0]}x{static[1]}", f"2x{c}x{static[0]}x{static[1]}"]
    sizes = [s.format(c=c) for s in DEFAULT_CHECK_SIZES]
    if max_side and f"1x{c}x{max_side}x{max_side}" not in sizes:
        sizes.append(f"1x{c}x{max_side}x{max_side}")
    return sizes


def size_label(n: int, c: int, h: int, w: int) -> str:
    return f"{n}x{c}x{h}x{w}"


# ---------------------------------------------------------------------------- images

def synthetic_images(n: int, h: int, w: int, channels: int, *, seed: int = 0) -> np.ndarray:
    """N x H x W x C uint8 smooth random images (low-frequency noise, like real scenes)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, channels), dtype=np.uint8)
    for i in range(n):
        for c in range(channels):
            coarse = rng.uniform(0, 255, size=(max(2, h // 16), max(2, w // 16)))
            img = Image.fromarray(coarse.astype(np.float32), mode="F").resize(
                (w, h), Image.Resampling.BICUBIC)
            fine = rng.normal(0, 8, size=(h, w))
            out[i, :, :, c] = np.clip(np.asarray(img) + fine, 0, 255).astype(np.uint8)
    return out


def real_images(card: ModelCard, *, dataset: str | None = None, limit: int = 16,
                fit: bool = True) -> tuple[list[np.ndarray], str]:
    """Up to `limit` validation images (HxWxC uint8) of the model's training data.

    Returns ([], reason) when the data is unavailable; the caller falls back to synthetic
    images and reports the reason.
    """
    name = dataset or (card.trained_on or {}).get("name")
    if not name:
        return [], "the model card does not name its training data (pass --data)"
    try:
        from segdeploy.data import get_dataset

        ds = get_dataset(name, "val", channel_mode=card.channel_mode,
                         intensity=card.intensity_mapping())
        count = len(ds)
        if count == 0:
            return [], f"dataset {name!r} has no validation images"
        picks = np.unique(np.linspace(0, count - 1, num=min(limit, count)).round().astype(int))
        images = [as_hwc_uint8(ds[int(i)][0], card.in_channels) for i in picks]
    except Exception as exc:  # missing optional package, missing folder, unreadable file
        return [], f"dataset {name!r} is unavailable ({first_line(exc, limit=160)})"
    if not fit:
        return images, f"{name} val x{len(images)}"
    fitted = [f for img in images if (f := fit_image(img, card)) is not None]
    if not fitted:
        return [], f"dataset {name!r} images are smaller than the model's min size"
    h, w = fitted[0].shape[:2]
    same = all(img.shape[:2] == (h, w) for img in fitted)
    return fitted, f"{name} val x{len(fitted)}" + (f" ({h}x{w})" if same else "")


def fit_image(img: np.ndarray, card: ModelCard) -> np.ndarray | None:
    """The image at a size the model takes: resized to a static size, else cropped to a
    multiple of size_multiple; None if smaller than min_size."""
    static = card.static_size
    fixed = (int(static[0]), int(static[1])) if static else None
    if fixed is not None:
        from PIL import Image

        if img.shape[:2] == fixed:
            return img
        squeeze = img.shape[2] == 1
        pil = Image.fromarray(img[:, :, 0] if squeeze else img)
        out = np.asarray(pil.resize((fixed[1], fixed[0]), Image.Resampling.BILINEAR))
        return out[:, :, None] if squeeze else out
    h, w = img.shape[:2]
    m = max(1, card.size_multiple)
    h2, w2 = h // m * m, w // m * m
    if min(h2, w2) < card.min_size:
        return None
    return img[:h2, :w2]


def batches(images: Sequence[np.ndarray], batch: int = 4) -> list[np.ndarray]:
    """Stack images of equal size into N x H x W x C batches of at most `batch`."""
    groups: dict[tuple[int, ...], list[np.ndarray]] = {}
    for img in images:
        groups.setdefault(img.shape, []).append(img)
    out = []
    for imgs in groups.values():
        for i in range(0, len(imgs), batch):
            out.append(np.stack(imgs[i:i + batch]))
    return out


def graph_input(images_nhwc: np.ndarray, card: ModelCard, *, preprocess: bool) -> np.ndarray:
    """What the graph's `input` takes: the uint8 NHWC batch, or normalised float NCHW."""
    if preprocess:
        return np.ascontiguousarray(images_nhwc)
    return np.stack([normalize(img, card.mean, card.std) for img in images_nhwc])


# ---------------------------------------------------------------------------- comparison

def compare(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], *, graph: str,
            inputs: str, gate: str, threshold: float | None = None) -> list[ParityRow]:
    """Rows comparing every output; `gate` is "fp32", "fp16" or "info"; `threshold`: the
    card's, for a binary (1-channel) head."""
    logits_ref, logits_got = ref["logits"], got["logits"]
    if logits_ref.shape != logits_got.shape:
        return [ParityRow(graph, inputs, "logits", None, None, 0.0, 0.0, 0.0, 0,
                          f"shape {logits_ref.shape}", False)]
    errors = logit_errors(logits_ref, logits_got)
    tol = fp32_tolerance(logits_ref)
    off_ties = nontied(logits_ref, tol, threshold)
    rows = []
    ref_arg = class_map(logits_ref, threshold)
    for name, pred in (("logits", class_map(logits_got, threshold)), ("mask", got.get("mask"))):
        if pred is None:
            continue
        if pred.shape != ref_arg.shape:
            rows.append(ParityRow(graph, inputs, name, None, None, 0.0, 0.0, 0.0, 0,
                                  f"shape {ref_arg.shape}", False))
            continue
        agree = pred == ref_arg
        a_all = float(agree.mean())
        a_nt = float(agree[off_ties].mean()) if off_ties.any() else 1.0
        max_abs = errors.max_abs if name == "logits" and logits_ref.size else None
        p99 = errors.p99_abs if name == "logits" and logits_ref.size else None
        criterion, ok = _judge(gate, errors.finite, a_all, a_nt, max_abs, tol)
        rows.append(ParityRow(graph, inputs, name, max_abs, p99, a_all, a_nt,
                              float(1.0 - off_ties.mean()), int(agree.size), criterion, ok))
    return rows


def _judge(gate: str, finite: bool, a_all: float, a_nontied: float, max_abs: float | None,
           tol: float) -> tuple[str, bool | None]:
    """The threshold text and verdict of one row (None: information only)."""
    if gate == Precision.FP32:
        return (f"max<={tol:.2g}, argmax=100% off ties",
                finite and a_nontied == 1.0 and (max_abs is None or max_abs <= tol))
    if gate == Precision.FP16:
        return f"argmax>={FP16_MIN_AGREEMENT:.1%}", finite and a_all >= FP16_MIN_AGREEMENT
    return "info (finite)", None if finite else False


def merge(batches_ref: list[dict[str, np.ndarray]], batches_got: list[dict[str, np.ndarray]]
          ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Concatenate per-batch outputs of equal spatial size; flatten otherwise (pixels only)."""
    def cat(items: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        return {k: np.concatenate([_flat(d[k]) for d in items], axis=0) for k in items[0]}
    return cat(batches_ref), cat(batches_got)


def _flat(a: np.ndarray) -> np.ndarray:
    """N x K x H x W -> (N*H*W) x K x 1 x 1 (or N x H x W -> N*H*W x 1 x 1) to mix sizes."""
    if a.ndim == 4:
        return a.transpose(0, 2, 3, 1).reshape(-1, a.shape[1], 1, 1)
    return a.reshape(-1, 1, 1)


# ---------------------------------------------------------------------------- runners

def onnx_runner(path: str, *, threads: int | None = None
                ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """input -> {output name: array} with ONNX Runtime's CPU provider (an OnnxRuntimeRunner,
    kept active for the caller's lifetime of the closure)."""
    from segdeploy.runtime.onnxruntime_runner import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(path, providers="cpu", threads=threads).activate()
    input_name = next(iter(runner.input_specs()))

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        return runner.infer({input_name: x})

    run.runner = runner  # type: ignore[attr-defined]  # for callers that close it early
    return run


def torch_runner(wrapper: Any, names: list[str]) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """input -> {output name: array} from the PyTorch DeployWrapper (the reference)."""
    import torch

    def run(x: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = wrapper(torch.from_numpy(x))
        outs = out if isinstance(out, tuple | list) else (out,)
        return {n: o.detach().cpu().numpy() for n, o in zip(names, outs, strict=True)}

    return run
