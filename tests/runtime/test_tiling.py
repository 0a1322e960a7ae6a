"""Overlap-tile prediction: grid geometry, stitching, and equality with whole-image results."""

from __future__ import annotations

import numpy as np
import pytest

from segdeploy.errors import UsageError
from segdeploy.runtime import Segmenter
from segdeploy.runtime.tiling import run_tiled, tile_grid


@pytest.mark.parametrize("h,w,tile,overlap,align", [(100, 37, 32, 8, 1), (64, 64, 64, 0, 1),
                                                    (5, 300, (16, 40), (2, 6), 4),
                                                    (513, 257, 128, 30, 32)])
def test_grid_covers_image_exactly_once(h, w, tile, overlap, align):
    grid = tile_grid(h, w, tile, overlap, align)
    assert all(t % align == 0 for t in grid.tile) and all(o % align == 0 for o in grid.overlap)
    cover = np.zeros((grid.counts[0] * grid.step[0], grid.counts[1] * grid.step[1]), int)
    (top, bottom), (left, right) = grid.padding
    padded_h, padded_w = h + top + bottom, w + left + right
    for y, x in grid.origins():
        assert y + grid.tile[0] <= padded_h and x + grid.tile[1] <= padded_w
        cover[y:y + grid.step[0], x:x + grid.step[1]] += 1
    assert (cover == 1).all() and cover.shape[0] >= h and cover.shape[1] >= w
    assert len(list(grid.origins())) == len(grid)


def test_stitching_centres_reassembles_the_image():
    image = np.random.default_rng(0).integers(0, 256, (53, 71, 2), dtype=np.uint8)
    grid = tile_grid(53, 71, 24, 5)
    seen = []

    def centres(tiles):  # each tile "predicts" its own centre pixels (channel-first)
        seen.append(tiles.shape)
        o = grid.overlap[0]
        return tiles[:, o:-o, o:-o].transpose(0, 3, 1, 2)

    out = run_tiled(image, grid, centres, batch_size=3)
    np.testing.assert_array_equal(out, image.transpose(2, 0, 1))
    assert all(s[0] <= 3 and s[1:3] == (24, 24) for s in seen)


def test_tile_must_leave_a_centre():
    with pytest.raises(UsageError, match="no centre"):
        tile_grid(100, 100, 16, 8)
    with pytest.raises(UsageError, match="tile"):
        tile_grid(100, 100, (16, 16, 3), 2)


@pytest.mark.parametrize("valid", [False, True])
def test_tiled_equals_whole_image_when_receptive_field_fits_overlap(tiny_model, valid):
    # receptive field radius < 8 pixels; nearest upsampling after the stride-2 pooling lines
    # up with the pooling grid only at even sizes, hence size_multiple=2 (as real models pad
    # to their stride)
    path, _ = tiny_model(valid=valid, size_multiple=2)
    image = np.random.default_rng(5).integers(0, 256, (90, 123, 3), dtype=np.uint8)
    with Segmenter.load(path, threads=1) as seg:
        whole = seg.predict(image)
        tiled = seg.predict_tiled(image, tile=40, overlap=8)
        if valid:
            with pytest.raises(UsageError, match="overlap"):
                seg.predict_tiled(image, tile=40, overlap=0)
    assert tiled.shape == whole.shape and tiled.dtype == whole.dtype
    # the mirror padding at the image border differs (whole: bottom/right only), so compare
    # away from the border, where both see the same real context
    inner = (slice(8, -8), slice(8, -8))
    assert (tiled[inner] == whole[inner]).mean() > 0.999


def test_tiled_runs_report_their_progress() -> None:
    from segdeploy.runtime.segmenter_tiling import PROGRESS_TILES, tile_progress
    from segdeploy.runtime.tiling import run_tiled, tile_grid

    image = np.zeros((100, 130, 1), np.uint8)
    grid = tile_grid(100, 130, 32, 8, 8)
    seen: list[tuple[int, int]] = []
    run_tiled(image, grid, lambda t: np.zeros((len(t), *grid.step), np.uint8), batch_size=3,
              on_tiles=lambda done, total: seen.append((done, total)))
    total = grid.counts[0] * grid.counts[1]
    assert seen[-1] == (total, total) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    with tile_progress(PROGRESS_TILES * 4) as on_tiles:  # no terminal under pytest: no bar
        assert on_tiles is None
