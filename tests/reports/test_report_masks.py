"""Masks and disagreement maps as pixels: the right pixels get the right colours."""

from __future__ import annotations

import numpy as np
import pytest
from hand_made import DIFFER, ENGINE, REFERENCE

from segdeploy.overlays import overlay_colour
from segdeploy.reports.masks import (
    AGREE_GREY,
    BACKGROUND,
    disagreement_map,
    disagreement_pairs,
    mask_rgb,
    pair_colours,
)


def test_mask_colours_follow_the_overlay_palette() -> None:
    rgb = mask_rgb(REFERENCE)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == BACKGROUND
    assert tuple(rgb[0, 3]) == overlay_colour(1) and tuple(rgb[2, 0]) == overlay_colour(2)


def test_pairs_count_each_reference_engine_pair() -> None:
    assert disagreement_pairs(REFERENCE, ENGINE) == {(0, 1): 1, (1, 2): 1, (2, 0): 1}
    assert disagreement_pairs(REFERENCE, REFERENCE) == {}
    more = ENGINE.copy()
    more[0, 0] = 1  # a second 0 -> 1 pixel: that pair comes first
    assert list(disagreement_pairs(REFERENCE, more).items())[0] == ((0, 1), 2)


def test_disagreement_map_colours_exactly_the_differing_pixels() -> None:
    pairs = disagreement_pairs(REFERENCE, ENGINE)
    colours = pair_colours(pairs)
    assert len(set(colours.values())) == 3
    image = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    out = disagreement_map(image, REFERENCE, ENGINE, colours)
    assert out.shape == (4, 6, 3) and out.dtype == np.uint8
    for y in range(4):
        for x in range(6):
            px = tuple(int(v) for v in out[y, x])
            if (y, x) in DIFFER:
                assert px == colours[DIFFER[(y, x)]], (y, x)
            else:  # agreeing: a dim grey that follows the image
                assert px[0] == px[1] == px[2] and AGREE_GREY[0] <= px[0] <= AGREE_GREY[1]
    assert out[3, 5, 0] > out[0, 0, 0]  # brighter image pixel, lighter grey


def test_a_pair_without_a_colour_is_white_and_shapes_must_match() -> None:
    out = disagreement_map(None, REFERENCE, ENGINE, {(0, 1): (1, 2, 3)})
    assert tuple(out[0, 2]) == (1, 2, 3) and tuple(out[1, 5]) == (255, 255, 255)
    with pytest.raises(ValueError, match="shapes"):
        disagreement_map(None, REFERENCE, ENGINE[:3], {})
