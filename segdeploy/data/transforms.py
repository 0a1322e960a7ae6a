"""Training augmentation and validation padding on numpy arrays, keeping masks aligned.

Both take and return `(image HxWxC uint8, mask HxW uint8)`; the training loop normalises
afterwards with `segdeploy.imaging.normalize`. Images resize bilinearly, masks with nearest
neighbour (class ids must never blend); padding is 0 for images and 255 (ignore) for masks,
so padded pixels add nothing to the loss.

Randomness comes from a numpy Generator. For reproducible training whatever the number of
DataLoader workers, draw one per sample with `sample_rng(seed, epoch, index)`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segdeploy.errors import DataError
from segdeploy.imaging import IGNORE_INDEX


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """An independent, reproducible stream per (seed, epoch, sample)."""
    return np.random.default_rng([seed, epoch, index])


def _pair(size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = size
    return int(h), int(w)


def _check(image: np.ndarray, mask: np.ndarray) -> None:
    if image.dtype != np.uint8 or mask.dtype != np.uint8 or image.ndim != 3 or mask.ndim != 2:
        raise DataError(f"transform got image {image.dtype}{image.shape} and mask "
                        f"{mask.dtype}{mask.shape}", expected="HxWxC uint8 and HxW uint8")
    if image.shape[:2] != mask.shape:
        raise DataError(f"image {image.shape[:2]} and mask {mask.shape} differ in size",
                        expected="a mask of the image's size")


def resize(image: np.ndarray, mask: np.ndarray, height: int, width: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear for the image (per channel through Pillow), nearest for the mask."""
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image, mask
    size = (width, height)
    if image.shape[2] == 3:
        out = np.asarray(Image.fromarray(image, "RGB").resize(size, Image.Resampling.BILINEAR))
    else:
        out = np.stack([np.asarray(Image.fromarray(image[:, :, c], "L")
                                   .resize(size, Image.Resampling.BILINEAR))
                        for c in range(image.shape[2])], axis=2)
    m = np.asarray(Image.fromarray(mask, "L").resize(size, Image.Resampling.NEAREST))
    return out, m


def pad_to(image: np.ndarray, mask: np.ndarray, height: int, width: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Pad bottom/right up to at least (height, width): image with 0, mask with 255."""
    h, w = mask.shape
    ph, pw = max(0, height - h), max(0, width - w)
    if ph == 0 and pw == 0:
        return image, mask
    image = np.pad(image, ((0, ph), (0, pw), (0, 0)), constant_values=0)
    mask = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
    return image, mask


@dataclass
class TrainTransform:
    """Random scale, random crop (padding when smaller) to `size`, horizontal flip (off for
    labels whose meaning depends on the side: left / right hemisphere), optional vertical
    flip. `size=None` keeps the (scaled) image whole; scale=(1, 1) turns scaling off."""

    size: int | tuple[int, int] | None
    scale: tuple[float, float] = (0.75, 1.25)
    hflip: bool = True
    seed: int | None = 0
    vflip: bool = False

    def __post_init__(self) -> None:
        self.size = _pair(self.size) if self.size is not None else None
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise DataError(f"scale range {self.scale}", expected="0 < low <= high")
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, image: np.ndarray, mask: np.ndarray,
                 rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Augment one sample; `rng` overrides the transform's own seeded stream."""
        _check(image, mask)
        rng = self._rng if rng is None else rng
        h, w = mask.shape
        lo, hi = self.scale
        if self.size is None:  # whole images: they keep their size (batches need one)
            if (lo, hi) != (1.0, 1.0):
                s = float(rng.uniform(lo, hi))
                image, mask = _scale_keep_size(image, mask, s)
        else:
            crop_h, crop_w = self.size
            s = float(rng.uniform(lo, hi))
            image, mask = resize(image, mask, max(1, round(h * s)), max(1, round(w * s)))
            image, mask = pad_to(image, mask, crop_h, crop_w)
            h, w = mask.shape
            y = int(rng.integers(0, h - crop_h + 1))
            x = int(rng.integers(0, w - crop_w + 1))
            image, mask = image[y:y + crop_h, x:x + crop_w], mask[y:y + crop_h, x:x + crop_w]
        # one draw per flip, made whether or not the flip is on, so turning one off does not
        # change the other augmentations of a seeded run
        flip_h, flip_v = rng.random() < 0.5, rng.random() < 0.5
        if self.hflip and flip_h:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if self.vflip and flip_v:
            image, mask = image[::-1], mask[::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)

    def describe(self) -> dict[str, object]:
        """Plain-JSON record for the checkpoint."""
        return {"hflip": bool(self.hflip), "vflip": bool(self.vflip),
                "scale": [float(v) for v in self.scale],
                "crop": list(self.size) if self.size is not None else None}


def _scale_keep_size(image: np.ndarray, mask: np.ndarray, s: float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Zoom by s about the centre and crop / pad (mask 255) back to the original size."""
    h, w = mask.shape
    image, mask = resize(image, mask, max(1, round(h * s)), max(1, round(w * s)))
    sh, sw = mask.shape
    y, x = max(0, (sh - h) // 2), max(0, (sw - w) // 2)
    image, mask = image[y:y + h, x:x + w], mask[y:y + h, x:x + w]
    ph, pw = h - mask.shape[0], w - mask.shape[1]
    if ph or pw:
        top, left = ph // 2, pw // 2
        image = np.pad(image, ((top, ph - top), (left, pw - left), (0, 0)))
        mask = np.pad(mask, ((top, ph - top), (left, pw - left)), constant_values=IGNORE_INDEX)
    return image, mask


@dataclass
class ValTransform:
    """Deterministic: optional centre crop / pad to `size`, then pad up to `min_size` and to a
    multiple of `multiple` (bottom/right, mask 255). With no arguments it changes nothing."""

    size: int | tuple[int, int] | None = None
    min_size: int = 0
    multiple: int = 1

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check(image, mask)
        if self.size is not None:
            th, tw = _pair(self.size)
            h, w = mask.shape
            y, x = max(0, (h - th) // 2), max(0, (w - tw) // 2)
            image, mask = image[y:y + th, x:x + tw], mask[y:y + th, x:x + tw]
            image, mask = pad_to(image, mask, th, tw)
        h, w = mask.shape
        h, w = max(h, self.min_size), max(w, self.min_size)
        m = max(1, self.multiple)
        image, mask = pad_to(image, mask, -(-h // m) * m, -(-w // m) * m)
        return np.ascontiguousarray(image), np.ascontiguousarray(mask)
