"""Class masks and disagreement maps as RGB pixels for reports (numpy only).

A mask is drawn in the overlay palette (`segdeploy.overlays`: bright, distinct colours; class
0 dark), so a report's masks match what `segdeploy predict --overlay` shows. A disagreement
map keeps the pixels where two masks agree as a dim grey copy of the image (where they are,
without drawing the eye) and colours each pixel that differs by its (reference class, other
class) pair, one colour per pair (`PAIR_COLOURS`, unlike the classes' colours), so "PyTorch
says grey matter, the engine says white matter" reads as one colour with a pixel count in
the legend.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from segdeploy.imaging import as_hwc_uint8
from segdeploy.overlays import mask_colours, overlay_colour

#: class 0 (background) in a drawn mask
BACKGROUND = (0, 0, 0)
#: the grey range agreeing pixels are mapped into (dark, so differences stand out)
AGREE_GREY = (24, 96)
#: disagreement colours, most frequent pair first: bright on dark grey, and unlike the first
#: classes' mask colours (red, green, blue), so a pair is not read as a class
PAIR_COLOURS = ((255, 230, 0), (255, 0, 220), (0, 230, 255), (255, 140, 0), (170, 120, 255),
                (150, 255, 80), (255, 110, 180), (0, 200, 140), (200, 200, 255),
                (255, 190, 150))

Pair = tuple[int, int]


def class_colour(class_id: int) -> tuple[int, int, int]:
    """The colour of a class in a drawn mask: black for class 0, else the overlay colour."""
    return BACKGROUND if int(class_id) == 0 else overlay_colour(class_id)


def mask_rgb(mask: np.ndarray) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 (class_colour of every pixel)."""
    out = mask_colours(mask)
    out[np.asarray(mask) == 0] = BACKGROUND
    return out


def disagreement_pairs(reference: np.ndarray, other: np.ndarray) -> dict[Pair, int]:
    """{(reference class, other class): pixels} over the pixels where the masks differ,
    most pixels first."""
    ref, got = _same_shape(reference, other)
    differ = ref != got
    if not differ.any():
        return {}
    pairs, counts = np.unique(np.stack([ref[differ], got[differ]]), axis=1, return_counts=True)
    found = {(int(a), int(b)): int(n) for (a, b), n in zip(pairs.T, counts, strict=True)}
    return dict(sorted(found.items(), key=lambda kv: (-kv[1], kv[0])))


def pair_colours(pairs: Mapping[Pair, int] | list[Pair]) -> dict[Pair, tuple[int, int, int]]:
    """One colour per pair, in the order given (most frequent first gets the first colour);
    more pairs than colours reuse them (the legend's counts still tell them apart)."""
    return {pair: PAIR_COLOURS[i % len(PAIR_COLOURS)] for i, pair in enumerate(pairs)}


def disagreement_map(image: np.ndarray | None, reference: np.ndarray, other: np.ndarray,
                     colours: Mapping[Pair, tuple[int, int, int]]) -> np.ndarray:
    """HxWx3 uint8: agreeing pixels as a dim grey copy of `image` (flat grey without one),
    differing pixels in the colour of their (reference, other) pair; a pair missing from
    `colours` is drawn white."""
    ref, got = _same_shape(reference, other)
    lo, hi = AGREE_GREY
    if image is None:
        grey = np.full(ref.shape, (lo + hi) // 2, dtype=np.uint8)
    else:
        rgb = as_hwc_uint8(image, 3).astype(np.float32)
        if rgb.shape[:2] != ref.shape:
            raise ValueError(f"image {rgb.shape[:2]} and masks {ref.shape} differ in size")
        lum = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
        grey = (lo + lum * (hi - lo) / 255.0 + 0.5).astype(np.uint8)
    out = np.repeat(grey[:, :, None], 3, axis=2)
    differ = ref != got
    if differ.any():
        out[differ] = (255, 255, 255)
        for (a, b), colour in colours.items():
            out[differ & (ref == a) & (got == b)] = colour
    return out


def _same_shape(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ref, got = np.asarray(reference), np.asarray(other)
    if ref.shape != got.shape or ref.ndim != 2:
        raise ValueError(f"masks of shapes {ref.shape} and {got.shape}: expected two HxW "
                         "masks of one size")
    return ref, got
