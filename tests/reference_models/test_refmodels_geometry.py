"""segdeploy.geometry (torch-free) checked against the real valid U-Net."""

from __future__ import annotations

import pytest
import torch

from segdeploy.errors import ModelError
from segdeploy.geometry import (
    unet_valid_crop_offsets,
    unet_valid_input_size,
    unet_valid_margin,
    unet_valid_min_input_size,
    unet_valid_output_size,
)
from segdeploy.reference_models import get_model


def test_paper_sizes() -> None:
    assert unet_valid_output_size(572) == 388  # Ronneberger et al., fig. 1
    assert unet_valid_input_size(388) == 572
    assert unet_valid_margin() == (572 - 388) // 2
    assert len(unet_valid_crop_offsets()) == 4


def test_too_small_raises() -> None:
    low = unet_valid_min_input_size()
    assert unet_valid_output_size(low) >= 1
    with pytest.raises(ModelError, match="too small"):
        unet_valid_output_size(low - 1)
    with pytest.raises(ModelError):
        unet_valid_output_size(100, depth=0)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_input_size_is_smallest_giving_the_output(depth: int) -> None:
    low = unet_valid_min_input_size(depth)
    for out in range(1, 80, 3):
        size = unet_valid_input_size(out, depth)
        assert unet_valid_output_size(size, depth) >= out
        if size - 1 >= low:
            assert unet_valid_output_size(size - 1, depth) < out
        # the answer is a clean size: centred exactly, margin on both sides
        assert size - unet_valid_output_size(size, depth) == 2 * unet_valid_margin(depth)


def test_output_size_matches_the_model_depth2() -> None:
    torch.manual_seed(0)
    model = get_model("unet_valid", num_classes=2, width=0.125, depth=2).eval()
    low = unet_valid_min_input_size(2)
    assert model.meta["min_size"] == low
    with torch.no_grad():
        for h in range(low, low + 20):
            w = h + 7
            y = model(torch.randn(1, 3, h, w))
            assert y.shape[-2:] == (unet_valid_output_size(h, 2), unet_valid_output_size(w, 2))
        with pytest.raises(ModelError, match="too small"):
            model(torch.randn(1, 3, low - 1, low + 3))


def test_output_size_matches_the_model_depth4() -> None:
    model = get_model("unet_valid", num_classes=2, width=0.125).eval()
    with torch.no_grad():
        for h, w in [(188, 203), (197, 220), (205, 236)]:
            y = model(torch.randn(1, 3, h, w))
            assert y.shape[-2:] == (unet_valid_output_size(h), unet_valid_output_size(w))


def test_trailing_pixels_are_ignored_so_output_is_anchored() -> None:
    """Any size behaves as the largest clean size at its top-left: the margin always holds."""
    torch.manual_seed(0)
    depth = 2
    model = get_model("unet_valid", num_classes=2, width=0.125, depth=depth).eval()
    clean = unet_valid_input_size(10, depth)
    x = torch.randn(1, 3, clean + 2**depth - 1, clean + 5)
    with torch.no_grad():
        ref = model(x[:, :, :clean, :clean])
        for extra_h, extra_w in [(1, 0), (2, 3), (2**depth - 1, 1)]:
            y = model(x[:, :, :clean + extra_h, :clean + extra_w])
            assert y.shape == ref.shape
            torch.testing.assert_close(y, ref)
        # a bigger clean input sees the same pixels: its top-left output block is identical
        big = unet_valid_input_size(unet_valid_output_size(clean, depth) + 1, depth)
        xb = torch.randn(1, 3, big, big)
        xb[:, :, :clean, :clean] = x[:, :, :clean, :clean]
        yb = model(xb)
    n = ref.shape[-1]
    torch.testing.assert_close(yb[..., :n, :n], ref, rtol=1e-4, atol=1e-5)


def test_geometry_imports_without_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, segdeploy.geometry as g; g.unet_valid_output_size(572); "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
