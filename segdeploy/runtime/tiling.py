"""Overlap-tile segmentation of images larger than the model accepts (U-Net paper, Fig. 2).

The image is mirror-padded by `overlap` on every side; tiles of `tile` pixels step by
`tile - 2 * overlap`; each tile predicts only its centre, whose context is real image (or its
mirror at the borders), and the centres are stitched edge to edge. With tile and overlap
multiples of the model's stride the pooling grids of all tiles line up with the whole image's,
so a model whose receptive field fits in the overlap gives the same result as untiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from segdeploy.errors import UsageError
from segdeploy.geometry import round_down, round_up


def as_pair(value: int | tuple[int, int], what: str) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        value = (int(value), int(value))
    if len(value) != 2 or any(int(v) < 0 for v in value):
        raise UsageError(f"{what}={value!r}", expected="a non-negative int or (height, width)")
    return int(value[0]), int(value[1])


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one image are, in the coordinates of the mirror-padded image."""

    image: tuple[int, int]     # (h, w) of the image
    tile: tuple[int, int]      # model input size of a tile
    overlap: tuple[int, int]   # context discarded on each side of a tile
    counts: tuple[int, int]    # tiles along y and x

    @property
    def step(self) -> tuple[int, int]:
        return (self.tile[0] - 2 * self.overlap[0], self.tile[1] - 2 * self.overlap[1])

    @property
    def padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) mirror padding of the image."""
        pads = []
        for axis in range(2):
            covered = self.counts[axis] * self.step[axis]
            o = self.overlap[axis]
            pads.append((o, covered - self.image[axis] + o))
        return pads[0], pads[1]

    def origins(self) -> Iterator[tuple[int, int]]:
        """Top-left corner of every tile in the padded image (= its centre's corner in the
        image), row by row."""
        sy, sx = self.step
        for i in range(self.counts[0]):
            for j in range(self.counts[1]):
                yield i * sy, j * sx

    def __len__(self) -> int:
        return self.counts[0] * self.counts[1]


def tile_grid(h: int, w: int, tile: int | tuple[int, int], overlap: int | tuple[int, int],
              align: int = 1) -> TileGrid:
    """Tiles covering an h x w image; tile rounded down and overlap up to `align`."""
    th, tw = (round_down(t, align) for t in as_pair(tile, "tile"))
    oy, ox = (round_up(o, align) for o in as_pair(overlap, "overlap"))
    if th - 2 * oy < max(align, 1) or tw - 2 * ox < max(align, 1):
        raise UsageError(f"tile {th}x{tw} leaves no centre with overlap {oy}x{ox} "
                         f"(aligned to {align} pixels)",
                         expected="tile > 2 * overlap (plus the alignment)",
                         fix="use a larger tile or a smaller overlap")
    counts = (math.ceil(h / (th - 2 * oy)), math.ceil(w / (tw - 2 * ox)))
    return TileGrid((h, w), (th, tw), (oy, ox), counts)


def run_tiled(image: np.ndarray, grid: TileGrid,
              predict_centres: Callable[[np.ndarray], np.ndarray], *,
              batch_size: int = 4,
              on_tiles: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Segment an HxWxC image tile by tile.

    `predict_centres(tiles)` takes N x tile_h x tile_w x C and returns N x ... x step_h x
    step_w: what each tile predicts for its centre. Returns ... x H x W.
    """
    (top, bottom), (left, right) = grid.padding
    if min(image.shape[:2]) > 1:
        padded = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    else:
        padded = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="edge")
    th, tw = grid.tile
    sy, sx = grid.step
    origins = list(grid.origins())
    out: np.ndarray | None = None
    for start in range(0, len(origins), max(batch_size, 1)):
        chunk = origins[start:start + max(batch_size, 1)]
        tiles = np.stack([padded[y:y + th, x:x + tw] for y, x in chunk])
        centres = predict_centres(tiles)
        if out is None:
            lead = centres.shape[1:-2]
            out = np.empty((*lead, grid.counts[0] * sy, grid.counts[1] * sx), centres.dtype)
        for (y, x), centre in zip(chunk, centres, strict=True):
            out[..., y:y + sy, x:x + sx] = centre
        if on_tiles is not None:
            on_tiles(start + len(chunk), len(origins))
    assert out is not None
    return out[..., :grid.image[0], :grid.image[1]]
