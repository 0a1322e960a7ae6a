"""Segmenter's tiling half: `predict_tiled`, and automatic tiling when an untiled run would
exceed the memory budget (how much a model needs is measured, memory.py; how far it looks,
receptive.py). A mixin so that segmenter.py stays about one screenful per concern.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from segdeploy.errors import SegdeployError, UsageError
from segdeploy.geometry import round_down, round_up
from segdeploy.manifest import ModelCard
from segdeploy.runtime.memory import (
    MEASURE_WITHIN,
    AutoTileNotice,
    format_bytes,
    measure_bytes_per_pixel,
)
from segdeploy.runtime.preprocess import PadLayout, choose_padding, crop_offsets
from segdeploy.runtime.receptive import influence_radius
from segdeploy.runtime.runner import Runner
from segdeploy.runtime.tiling import as_pair, run_tiled, tile_grid

DEFAULT_TILE = 512
#: image sides of the two runs that measure a model's memory per pixel (a few tenths of a
#: second on a small U-Net; only when an image comes near the memory budget)
PROBE_SIDES = (192, 384)
#: what a run returns: class-id masks, or the logits they come from
Want = Literal["mask", "logits"]


#: a tiled run of at least this many tiles shows progress where a terminal is attached
PROGRESS_TILES = 32


@contextlib.contextmanager
def tile_progress(total: int) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on stderr for long tiled runs, only where stderr is a terminal."""
    if total < PROGRESS_TILES or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("tiles", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task("tiles", total=total)
        yield lambda done, _total: bar.update(task, completed=done)


class TilingMixin:
    """The tiling methods of Segmenter; the attributes below are Segmenter's."""

    memory_budget: int
    bytes_per_pixel: int
    notify: Callable[[str], None] | None
    card: ModelCard
    channels: int
    runner: Runner
    _memory_measured: bool
    _radius: int | None
    _tile_align: int
    _margin: tuple[int, int]
    _boxes: list[Any]
    _align: int
    _base: int

    if TYPE_CHECKING:
        @property
        def max_size(self) -> tuple[int | None, int | None]: ...

        @property
        def static_size(self) -> tuple[int, int] | None: ...

        def image_logits(self, image: np.ndarray) -> np.ndarray: ...

        def _as_image(self, image: Any) -> np.ndarray: ...

        def _run_aligned(self, batch: np.ndarray, want: Want) -> np.ndarray: ...

        def _infer_batch(self, batch: np.ndarray, want: Want, box: Any = None
                         ) -> np.ndarray: ...

        def _as_wanted(self, out: np.ndarray, want: Want) -> np.ndarray: ...

        def _padding(self, h: int, w: int) -> PadLayout: ...

        def _tell(self, message: str, category: type[Warning], *,
                  once: str | None = None) -> None: ...

    def predict_tiled(self, image: np.ndarray, *, tile: int | tuple[int, int] | None = None,
                      overlap: int | tuple[int, int] | None = None,
                      batch_size: int = 4) -> np.ndarray:
        """An image of any size -> HxW class ids, segmented in overlapping tiles.

        For images larger than an engine's largest profile, or than memory allows (predict
        switches to this by itself above `memory_budget`). The image is mirror-padded, cut
        into tiles of `tile` pixels that overlap by `overlap` on each side; each tile keeps
        only its centre, whose context is real image, and the centres are stitched.
        tile: model input size per tile (default: the largest the engine takes, or 512);
        overlap: context discarded on each side (default tile / 8, at least the margin a
        "valid" model consumes). Both are aligned to the model's stride, so that every tile
        pools on the same grid as the whole image.
        """
        img = self._as_image(image)
        if tile is None:
            tile = self._default_tile()
        if overlap is None:
            overlap = self._default_overlap(tile)
        if self.card.output_mode == "valid":
            return self._valid_tiled(img, tile, overlap, batch_size)
        grid = tile_grid(img.shape[0], img.shape[1], tile, overlap, self._tile_align)
        return self._tiled(img, grid, batch_size)

    def _valid_tiled(self, img: np.ndarray, tile: int | tuple[int, int],
                     overlap: int | tuple[int, int], batch_size: int) -> np.ndarray:
        """A "valid" model (unet_valid) takes only min_size + k * stride inputs: tiles of
        such sizes, overlaps that keep every step a multiple of the stride, and the image
        shifted so that every tile pools in the phase of the untiled run (which pads it by
        its margin): the tiled masks then equal the untiled ones (a 2-pixel shift before)."""
        a, base = self._tile_align, self.card.min_size
        h, w = img.shape[:2]
        layout = self._padding(h, w)
        sizes, overlaps, shifts = [], [], []
        for t, o, pad in zip(as_pair(tile, "tile"), as_pair(overlap, "overlap"),
                             (layout.top, layout.left), strict=True):
            t = base + round_down(max(int(t) - base, a), a)
            o = int(o)
            if o < max(self._margin):
                raise UsageError(f"overlap {o} is smaller than the {self._margin} pixels "
                                 "this valid-mode model consumes at each border",
                                 fix=f"use overlap >= {max(self._margin)}")
            while (t - 2 * o) % a:
                o += 1
            if t - 2 * o < a:
                raise UsageError(f"tile {t} leaves no centre with overlap {o} for this "
                                 f"valid-mode model", fix=f"use a tile of at least {2 * o + a}")
            sizes.append(t)
            overlaps.append(o)
            shifts.append((pad - o) % a)
        ey, ex = shifts
        shifted = np.pad(img, ((ey, 0), (ex, 0), (0, 0)), mode="reflect" if min(h, w) > 1
                         else "edge")
        grid = tile_grid(h + ey, w + ex, (sizes[0], sizes[1]), (overlaps[0], overlaps[1]), 1)
        return self._tiled(shifted, grid, batch_size)[..., ey:, ex:]

    def _tiled(self, img: np.ndarray, grid: Any, batch_size: int) -> np.ndarray:
        sy, sx = grid.step
        oy, ox = grid.overlap

        def centres(tiles: np.ndarray) -> np.ndarray:
            out = self._infer_batch(tiles, "mask")
            start = crop_offsets(PadLayout(oy, oy, ox, ox, self._boxes[0]), grid.tile,
                                 out.shape[-2:], (sy, sx))
            if start is None:
                raise UsageError(f"overlap {oy}x{ox} is smaller than the {self._margin} "
                                 "pixels this valid-mode model consumes at each border",
                                 fix=f"use overlap >= {max(self._margin)}")
            return self._as_wanted(out[..., start[0]:start[0] + sy, start[1]:start[1] + sx],
                                   "mask")

        with tile_progress(grid.counts[0] * grid.counts[1]) as on_tiles:
            return run_tiled(img, grid, centres, batch_size=batch_size, on_tiles=on_tiles)

    def untiled_bytes(self, n: int, h: int, w: int) -> int:
        """Estimated peak memory of an untiled prediction of n images of h x w."""
        return int(n) * int(h) * int(w) * self.bytes_per_pixel

    def _needs_tiling(self, n: int, h: int, w: int) -> bool:
        if self.untiled_bytes(n, h, w) * MEASURE_WITHIN > self.memory_budget:
            self._measure_memory()  # the decision is close enough to matter: measure
        return self.untiled_bytes(n, h, w) > self.memory_budget

    def _measure_memory(self) -> None:
        """Once per Segmenter, where the model runs in host memory: its real bytes per pixel
        (memory.measure_bytes_per_pixel), so the budget holds for models far above the
        default figure (FCN-ResNet18: ~600 B/px) and tiles less for small ones."""
        if self._memory_measured or self.static_size is not None or not self.runner.host_memory:
            return
        self._memory_measured = True

        def run(side: int) -> None:
            self._run_aligned(np.zeros((1, side, side, self.channels), np.uint8), "mask")

        host = 6 * self.channels + 4 * self.card.output_channels + 2  # our own arrays
        measured = measure_bytes_per_pixel(run, PROBE_SIDES, host)
        if measured is not None:
            self.bytes_per_pixel = int(math.ceil(measured))

    def _predict_auto_tiled(self, img: np.ndarray) -> np.ndarray:
        """Tiles whose untiled memory fits the budget (one at a time); says so once."""
        tile = self._auto_tile()
        h, w = img.shape[:2]
        self._tell(f"image {h}x{w} would need about {format_bytes(self.untiled_bytes(1, h, w))}"
                   f" untiled, above the memory budget of {format_bytes(self.memory_budget)}:"
                   f" segmenting it in overlapping {tile[0]}x{tile[1]} tiles (set "
                   "memory_budget / --memory-budget to change)", AutoTileNotice, once="tiling")
        return self.predict_tiled(img, tile=tile, batch_size=1)

    def _auto_tile(self) -> tuple[int, int]:
        """The tile whose untiled run fits the memory budget, aligned to the stride."""
        side = math.isqrt(max(self.memory_budget // self.bytes_per_pixel, 1))
        floor = max(4 * self._tile_align, self.card.min_size + 2 * max(self._margin), 64)
        th, tw = (max(round_down(min(t, side), self._tile_align),
                      round_up(floor, self._tile_align)) for t in self._default_tile())
        return th, tw

    def _default_overlap(self, tile: int | tuple[int, int]) -> int:
        """Context per tile side: the model's measured influence radius (receptive.py; once
        per Segmenter), at least tile / 8 and a valid model's margin, and less than half the
        tile so that every tile keeps a centre."""
        t = min(tile) if isinstance(tile, tuple) else int(tile)
        if self._radius is None:
            side = min(DEFAULT_TILE, *(s for s in self.max_size if s), 4 * t)
            side = max(round_down(side, self._tile_align), self._tile_align)
            self._radius = influence_radius(lambda im: self.image_logits(im), side,
                                            self.channels)
        want = max(self._radius, t // 8, 1, *self._margin)
        fits = round_down(max((t - 1) // 2, self._tile_align), self._tile_align)
        return min(round_up(want, self._tile_align), max(fits, self._tile_align))

    def _default_tile(self) -> tuple[int, int]:
        max_h, max_w = self.max_size
        th = round_down(max_h, self._tile_align) if max_h else DEFAULT_TILE
        tw = round_down(max_w, self._tile_align) if max_w else DEFAULT_TILE
        return th, tw

    def _measure_margin(self) -> tuple[int, int]:
        """Context a "valid" model consumes per side, from one run on a small blank image
        (what the tiles' overlaps and the padding must at least give)."""
        size = max(self.card.min_size, 1)
        layout = choose_padding(size, size, boxes=self._boxes, multiple=self._align,
                                min_size=self.card.min_size, base=self._base)
        h, w = layout.input_size(size, size)
        try:
            out = self._infer_batch(np.zeros((1, h, w, self.channels), np.uint8), "logits",
                                    layout.box)
        except SegdeployError:
            return (0, 0)  # the retry loop in _run_aligned finds it on the first image
        return (max((h - out.shape[-2] + 1) // 2, 0), max((w - out.shape[-1] + 1) // 2, 0))
