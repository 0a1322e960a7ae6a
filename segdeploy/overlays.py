"""Overlays people can read: bright colours that stay visible on any image, an outline mode,
and a legend (class name -> colour) drawn into the picture.

The mask PNGs keep the VOC palette (what tools read); overlays use their own palette, since
VOC's dark reds and navies vanish on dark or red content. Every class outline gets a
one-pixel ring in black or white, whichever contrasts with the pixels under it, so a class
drawn in red stays visible on a red object.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from segdeploy.imaging import as_hwc_uint8

#: bright, distinct colours (class 1 first; class 0, background, is not drawn)
OVERLAY_COLOURS = np.array([
    (255, 64, 64), (64, 200, 64), (64, 128, 255), (255, 200, 0), (255, 64, 255),
    (0, 220, 220), (255, 140, 0), (160, 90, 255), (150, 255, 80), (255, 110, 180),
    (0, 160, 120), (200, 200, 255), (255, 255, 120), (120, 60, 0), (0, 90, 200),
], dtype=np.uint8)


def overlay_colour(class_id: int) -> tuple[int, int, int]:
    r, g, b = OVERLAY_COLOURS[(int(class_id) - 1) % len(OVERLAY_COLOURS)]
    return int(r), int(g), int(b)


def mask_colours(mask: np.ndarray) -> np.ndarray:
    """HxW class ids -> HxWx3 uint8 overlay colours (class 0 gets one too: callers mask it)."""
    ids = np.asarray(mask, dtype=np.int64)
    return OVERLAY_COLOURS[(ids - 1) % len(OVERLAY_COLOURS)]


def edges(mask: np.ndarray) -> np.ndarray:
    """Pixels whose right or lower neighbour has another class (one-pixel boundaries)."""
    m = np.asarray(mask)
    out = np.zeros(m.shape, bool)
    out[:, :-1] |= m[:, :-1] != m[:, 1:]
    out[:-1, :] |= m[:-1, :] != m[1:, :]
    out[:, 1:] |= m[:, :-1] != m[:, 1:]
    out[1:, :] |= m[:-1, :] != m[1:, :]
    return out


def _grow(where: np.ndarray) -> np.ndarray:
    grown = where.copy()
    grown[1:] |= where[:-1]
    grown[:-1] |= where[1:]
    grown[:, 1:] |= where[:, :-1]
    grown[:, :-1] |= where[:, 1:]
    return grown


def draw_overlay(image: np.ndarray, mask: np.ndarray, *, contours: bool = False,
                 alpha: float = 0.45) -> np.ndarray:
    """HxWx3 uint8: the mask's classes blended over the image (or only their outlines), with
    a contrasting ring around every outline; background (class 0) left as is."""
    rgb = as_hwc_uint8(image, 3)
    out = rgb.astype(np.float32)
    mask = np.asarray(mask)
    fg = mask > 0
    colours = mask_colours(mask).astype(np.float32)
    line = edges(mask) & (fg | _grow(fg))
    if not contours:
        out[fg] = (1 - alpha) * out[fg] + alpha * colours[fg]
    ring = _grow(line) & ~line
    luminance = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out[ring] = np.where((luminance[ring] > 128)[:, None], 0.0, 255.0)
    own = np.where(fg, mask, _nearest_class(mask))
    out[line] = mask_colours(own)[line]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _nearest_class(mask: np.ndarray) -> np.ndarray:
    """For background pixels on an outline, the class next to them (its colour is drawn)."""
    m = np.asarray(mask)
    best = m.copy()
    for shifted in (np.roll(m, 1, 0), np.roll(m, -1, 0), np.roll(m, 1, 1), np.roll(m, -1, 1)):
        best = np.where(best == 0, shifted, best)
    return best


def with_legend(picture: np.ndarray, mask: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    """The picture with a strip below it: a swatch and the name of every class present."""
    from PIL import Image, ImageDraw, ImageFont

    present = [int(c) for c in np.unique(np.asarray(mask)) if c > 0]
    if not present:
        return picture
    font = ImageFont.load_default()
    row, pad = 16, 4
    width = picture.shape[1]
    items, x, y = [], pad, pad
    for c in present:
        name = classes[c] if c < len(classes) else f"class {c}"
        w = 14 + 4 + int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(name, font=font))
        if x + w > width - pad and x > pad:
            x, y = pad, y + row
        items.append((c, name, x, y))
        x += w + 12
    strip = Image.new("RGB", (width, y + row + pad), (24, 24, 24))
    draw = ImageDraw.Draw(strip)
    for c, name, x, y in items:
        draw.rectangle((x, y + 2, x + 12, y + 12), fill=overlay_colour(c), outline=(255,) * 3)
        draw.text((x + 18, y + 1), name, fill=(240, 240, 240), font=font)
    return np.concatenate([picture, np.asarray(strip)], axis=0)
