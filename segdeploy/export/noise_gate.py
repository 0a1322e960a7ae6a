"""The INT8 gate at two sizes, against the FP32 model's own noise floor.

A fixed 99 % agreement can sit at a model's noise: on a small MRI U-Net, FP32 agrees with
itself on only ~99.0-99.5 % of pixels when its uint8 input moves by +-1 grey level. So the
gate measures that floor (FP32 on the clean images vs FP32 on the same images plus seeded
uniform integer noise in {-1, 0, +1}, clipped to 0..255) and, by default, asks INT8 to agree
with FP32 at least as well as the lower of the fixed threshold and that floor; the mIoU drop
limit always holds. An explicit --min-agreement is applied as given. Every check runs at the
images' own size and at a larger one (x2 by default): a graph that only passes at one size
is not passed. Each size reports which limit decided. At a factor s > 1 the gate takes
ceil(n / s) of the n images (spread over the split): each holds s^2 times the pixels, so the
larger size still judges s times the pixels of the first while its FP32 reference, its noise
floor and every candidate's run there cost s, not s^2, validation passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.comparison import Thresholds
from segdeploy.export.int8_gate import GateResult, judge, predict_masks, spread

#: the seed of the +-1 LSB input noise (the floor is reproducible)
NOISE_SEED = 0
#: sizes the gate judges at, as factors of the validation images' own size
DEFAULT_GATE_SCALES = (1.0, 2.0)


def scale_pair(image: np.ndarray, mask: np.ndarray, factor: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """An HxWxC uint8 image resized by `factor` (bilinear) and its mask (nearest)."""
    if factor == 1.0:
        return image, mask
    from PIL import Image

    h, w = mask.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    planes = [np.asarray(Image.fromarray(image[..., c]).resize(size, Image.Resampling.BILINEAR))
              for c in range(image.shape[2])]
    lab = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
    return np.stack(planes, axis=-1), lab


def images_at(n: int, factor: float) -> int:
    """How many of n images the gate judges at `factor`: all at x1 or less, ceil(n / factor)
    above (still `factor` times the pixels of the x1 check; see the module doc)."""
    return n if factor <= 1.0 else max(1, math.ceil(n / factor))


def with_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The uint8 image plus uniform integer noise in {-1, 0, +1} (1 LSB), clipped."""
    noise = rng.integers(-1, 2, size=image.shape, dtype=np.int16)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def agreement_limit(fixed: float, floor: float, use_floor: bool = True) -> tuple[float, str]:
    """The agreement a candidate needs and which limit that is: the lower of the fixed
    threshold and FP32's noise floor (only the fixed one when `use_floor` is off)."""
    if use_floor and floor < fixed:
        return floor, "noise floor"
    return fixed, "fixed threshold"


@dataclass
class SizeCheck:
    """One size of the gate: the candidate's figures, the FP32 floor, and the limit applied."""

    size: str  #: "197x233 (x1)"
    result: GateResult
    noise_floor: float  #: FP32 agreement with itself under +-1 LSB input noise, percent
    limit: float  #: the agreement the candidate needed here
    decided_by: str  #: "fixed threshold" | "noise floor"
    max_miou_drop: float | None

    @property
    def passes(self) -> bool:
        return self.result.passes(self.limit, self.max_miou_drop)

    def line(self) -> str:
        r = self.result
        change = f"drop {r.miou_drop:.2f}" if r.miou_drop >= 0 else f"gain {-r.miou_drop:.2f}"
        return (f"{self.size}: agreement {r.agreement:.3f}% (noise floor "
                f"{self.noise_floor:.3f}%, needs >= {self.limit:.3f}%: the {self.decided_by}), "
                f"mIoU {r.miou_int8:.2f} vs fp32 {r.miou_fp32:.2f} ({change})")

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, **self.result.to_dict(), "noise_floor": self.noise_floor,
                "limit": self.limit, "decided_by": self.decided_by,
                "max_miou_drop": self.max_miou_drop, "passes": self.passes}


class SizedGate:
    """Validation images at each gate size, FP32 masks of them, and FP32's noise floor there:
    measured once, then any candidate graph is judged against them."""

    def __init__(self, fp32: Path, pairs: list[tuple[np.ndarray, np.ndarray]], num_classes: int,
                 thresholds: Thresholds, *, scales: tuple[float, ...] = DEFAULT_GATE_SCALES,
                 use_floor: bool = True, threads: int | None = None) -> None:
        self.k, self.thresholds, self.use_floor, self.threads = (num_classes, thresholds,
                                                                 use_floor, threads)
        self.scales = tuple(dict.fromkeys(scales))
        self.sets = {s: [scale_pair(*pairs[i], s) for i in spread(len(pairs), images_at(
            len(pairs), s))] for s in self.scales}
        self.reference = {s: predict_masks(fp32, [im for im, _ in v], threads=threads)
                          for s, v in self.sets.items()}
        rng = np.random.default_rng(NOISE_SEED)
        self.floor = {}
        for s, v in self.sets.items():
            noisy = predict_masks(fp32, [with_noise(im, rng) for im, _ in v], threads=threads)
            self.floor[s] = judge(self.reference[s], noisy, self.labels(s), num_classes).agreement

    def labels(self, scale: float, n: int | None = None) -> list[np.ndarray]:
        return [m for _, m in self.sets[scale][:n]]

    def size_label(self, scale: float) -> str:
        sizes = {m.shape for _, m in self.sets[scale]}
        shape = next(iter(sizes)) if len(sizes) == 1 else None
        text = f"{shape[0]}x{shape[1]}" if shape else f"{len(sizes)} sizes"
        return f"{text} (x{scale:g})"

    def limit(self, scale: float) -> tuple[float, str]:
        return agreement_limit(self.thresholds.min_agreement, self.floor[scale], self.use_floor)

    def check(self, path: Path, scale: float, n: int | None = None) -> SizeCheck:
        """The candidate at one size (the first `n` images only, for sensitivity probes)."""
        images = [im for im, _ in self.sets[scale][:n]]
        masks = predict_masks(path, images, threads=self.threads)
        result = judge(self.reference[scale][:n], masks, self.labels(scale, n), self.k)
        limit, why = self.limit(scale)
        return SizeCheck(self.size_label(scale), result, self.floor[scale], limit, why,
                         self.thresholds.max_miou_drop)

    def judge_all(self, path: Path) -> list[SizeCheck]:
        """Every size, in order, stopping at the first that fails (the rest would not matter)."""
        checks = []
        for s in self.scales:
            checks.append(self.check(path, s))
            if not checks[-1].passes:
                break
        return checks
