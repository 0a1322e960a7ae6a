"""Post-build smoke parity: the engine against ONNX Runtime FP32 at every profile's min/opt/max.

A plan is only published when its argmax agrees with the FP32 reference on >= 99.5% of the
pixels at every profile shape. Inputs are smooth synthetic images (upsampled noise), which
look more like photographs than white noise does, so near-ties between classes stay rare.
No tensorrt here: the engine side is any Runner (`infer(feeds) -> dict`, context manager).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np

from segdeploy.comparison import FP16_MIN_AGREEMENT, argmax_agreement
from segdeploy.engine.profiles import Shape, ShapeProfile, format_shape
from segdeploy.errors import ParityError
from segdeploy.manifest import ExportInfo

#: the FP16 gate's agreement, for every build precision: the inputs are synthetic images and
#: the reference is ONNX Runtime FP32, so TF32 or FP16 kernels both must clear it
DEFAULT_THRESHOLD = FP16_MIN_AGREEMENT


class InferRunner(Protocol):
    def infer(self, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...


def sample_feeds(info: ExportInfo, shape: Shape, *, seed: int = 0) -> dict[str, np.ndarray]:
    """A deterministic batch of smooth images in the input's dtype (uint8 raw or normalised)."""
    n, c, h, w = shape
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, c, max(2, h // 8 + 1), max(2, w // 8 + 1)))
    rows = np.linspace(0, coarse.shape[2] - 1, h)
    cols = np.linspace(0, coarse.shape[3] - 1, w)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1 = np.minimum(r0 + 1, coarse.shape[2] - 1)
    c1 = np.minimum(c0 + 1, coarse.shape[3] - 1)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = coarse[:, :, r0][:, :, :, c0] * (1 - fc) + coarse[:, :, r0][:, :, :, c1] * fc
    bottom = coarse[:, :, r1][:, :, :, c0] * (1 - fc) + coarse[:, :, r1][:, :, :, c1] * fc
    image = np.clip(top * (1 - fr) + bottom * fr, 0, 255)
    if info.input_dtype == "uint8":
        return {info.input_name: image.round().astype(np.uint8)}
    mean = np.asarray(info.card.mean, dtype=np.float32).reshape(1, -1, 1, 1)
    std = np.asarray(info.card.std, dtype=np.float32).reshape(1, -1, 1, 1)
    return {info.input_name: ((image.astype(np.float32) / 255.0 - mean) / std).astype(np.float32)}


def parity_points(profiles: list[ShapeProfile]) -> list[tuple[int, str, Shape]]:
    """(profile index, 'min'|'opt'|'max', shape) for each profile, identical shapes once."""
    seen: set[tuple[int, Shape]] = set()
    points = []
    for index, shape_profile in enumerate(profiles):
        for kind, shape in shape_profile.shapes().items():
            if (index, shape) not in seen:
                seen.add((index, shape))
                points.append((index, kind, shape))
    return points


def compared_output(info: ExportInfo, outputs: Iterable[str]) -> str:
    """Which output parity compares: the logits when exported, else the first one."""
    names = list(outputs)
    for name in ("logits", *info.output_names):
        if name in names:
            return name
    return names[0]


def compare_point(reference: Mapping[str, np.ndarray], test: Mapping[str, np.ndarray],
                  name: str) -> dict[str, Any]:
    ref, got = np.asarray(reference[name]), np.asarray(test.get(name, np.empty(0)))
    record: dict[str, Any] = {"output": name, "agreement": argmax_agreement(ref, got)}
    if ref.shape != got.shape:
        record["problem"] = f"shape {list(got.shape)} instead of {list(ref.shape)}"
    elif np.issubdtype(ref.dtype, np.floating):
        diff = np.abs(ref.astype(np.float32) - got.astype(np.float32))
        record["max_abs_diff"] = float(np.nanmax(diff)) if diff.size else 0.0
        record["finite"] = bool(np.isfinite(got).all())
    return record


def run_parity(reference: InferRunner, engine_runner: InferRunner, info: ExportInfo,
               profiles: list[ShapeProfile], *, threshold: float = DEFAULT_THRESHOLD,
               reference_label: str = "onnxruntime") -> dict[str, Any]:
    """Run both at every parity point; the summary goes into the plan manifest."""
    records = []
    for seed, (index, kind, shape) in enumerate(parity_points(profiles)):
        feeds = sample_feeds(info, shape, seed=seed)
        ref_out = reference.infer(feeds)
        got_out = engine_runner.infer(feeds)
        record = compare_point(ref_out, got_out, compared_output(info, ref_out))
        records.append({"profile": index, "kind": kind, "shape": list(shape), **record})
    return summarize(records, threshold=threshold, reference_label=reference_label)


def summarize(records: list[dict[str, Any]], *, threshold: float,
              reference_label: str) -> dict[str, Any]:
    worst = min((r["agreement"] for r in records), default=0.0)
    failed = [r for r in records if r["agreement"] < threshold or "problem" in r
              or r.get("finite") is False]
    return {"reference": reference_label, "metric": "argmax agreement", "threshold": threshold,
            "min_agreement": worst, "passed": bool(records) and not failed, "points": records}


def check_parity(summary: dict[str, Any]) -> None:
    if summary.get("passed"):
        return
    bad = [f"profile {r['profile']} {r['kind']} {format_shape(tuple(r['shape']))}: "
           f"{r['agreement']:.4%}" + (f" ({r['problem']})" if "problem" in r else "")
           + (" (non-finite outputs)" if r.get("finite") is False else "")
           for r in summary.get("points", [])
           if r["agreement"] < summary["threshold"] or "problem" in r or r.get("finite") is False]
    raise ParityError(
        "the engine disagrees with " + str(summary.get("reference")) + ": " +
        ("; ".join(bad) or "no comparison was made"),
        expected=f"argmax agreement >= {summary['threshold']:.1%} at every profile shape",
        fix="build with --precision fp32 to compare, or re-export the FP16 ONNX with a lower "
            "activation bound so more layers stay float32")
