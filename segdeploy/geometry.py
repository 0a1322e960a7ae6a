"""Sizes of the valid (unpadded) U-Net, pure Python so the runtime can tile without torch.

The original U-Net (Ronneberger et al. 2015) uses unpadded 3x3 convolutions: every level's
two convolutions trim 4 pixels, 2x2 max-pooling halves (rounding down), every 2x2 up-conv
doubles. With depth 4 a 572x572 tile gives a 388x388 map centred in it (margin 92).

Inputs of the form ``2**depth * k + c`` ("clean" sizes, ``(size - 124) % 16 == 0`` at
depth 4) pool without remainder; the model crops its skips at fixed offsets, so on any other
size it behaves exactly as on the largest clean size that fits at the top-left and ignores
the trailing rows/columns. Output pixel (i, j) always sees input pixel
(i + margin, j + margin), ``margin = unet_valid_margin(depth)``.
"""

from __future__ import annotations

from segdeploy.errors import ModelError


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of `multiple` >= value (multiple >= 1)."""
    multiple = max(1, int(multiple))
    return -(-int(value) // multiple) * multiple


def round_down(value: int, multiple: int) -> int:
    multiple = max(1, int(multiple))
    return int(value) // multiple * multiple


#: pixels trimmed by the two unpadded 3x3 convolutions of one level
_CONV_TRIM = 4


def _encoder_sizes(size: int, depth: int) -> list[int]:
    """Sizes after each level's two convs (the skips), then the bottom."""
    sizes = [size - _CONV_TRIM]
    for _ in range(depth):
        sizes.append(sizes[-1] // 2 - _CONV_TRIM)
    return sizes


def _decoder_sizes(bottom: int, depth: int) -> list[int]:
    """Size after each up-conv + two convs, deepest first; the last is the output."""
    sizes = []
    s = bottom
    for _ in range(depth):
        s = 2 * s - _CONV_TRIM
        sizes.append(s)
    return sizes


def _check_depth(depth: int) -> None:
    if not isinstance(depth, int) or depth < 1:
        raise ModelError(f"U-Net depth must be a positive integer, got {depth!r}",
                         expected="1 or more down-sampling steps (4 in the paper)")


def _output_or_none(size: int, depth: int) -> int | None:
    enc = _encoder_sizes(size, depth)
    if min(enc) < 1:
        return None
    out = _decoder_sizes(enc[-1], depth)
    if min(out) < 1:
        return None
    return out[-1]


def unet_valid_min_input_size(depth: int = 4) -> int:
    """Smallest input side that gives a non-empty output (188 at depth 4)."""
    return unet_valid_input_size(1, depth)


def unet_valid_output_size(size: int, depth: int = 4) -> int:
    """Output side of the valid U-Net for an input side `size` (572 -> 388 at depth 4)."""
    _check_depth(depth)
    out = _output_or_none(int(size), depth)
    if out is None:
        low = unet_valid_min_input_size(depth)
        raise ModelError(f"input side {size} is too small for a valid U-Net of depth {depth}",
                         expected=f"at least {low} pixels per side",
                         fix=f"use images of {low} pixels or more, or the padded 'unet'")
    return out


def unet_valid_input_size(output_size: int, depth: int = 4) -> int:
    """Smallest input side whose output side is at least `output_size` (for overlap-tile).

    The output only grows at clean sizes, so the answer is always a clean size on which the
    output is exactly centred.
    """
    _check_depth(depth)
    if output_size < 1:
        raise ModelError(f"output size must be positive, got {output_size}")
    # bottom b gives output 2**d * b - c_out; invert, then walk the encoder back up.
    bottom = 1
    while (_decoder_sizes(bottom, depth)[-1] < output_size
           or min(_decoder_sizes(bottom, depth)) < 1):
        bottom += 1
    size = bottom
    for _ in range(depth):
        size = 2 * (size + _CONV_TRIM)
    return size + _CONV_TRIM


def unet_valid_margin(depth: int = 4) -> int:
    """Pixels between the input border and the output on each side (92 at depth 4)."""
    size = unet_valid_min_input_size(depth)
    return (size - unet_valid_output_size(size, depth)) // 2


def unet_valid_crop_offsets(depth: int = 4) -> list[int]:
    """Offset of each skip's centre crop, deepest level first (4, 16, 40, 88 at depth 4).

    Constant for every input size: the crop is anchored at the top-left, as on a clean size.
    """
    size = unet_valid_min_input_size(depth)
    enc = _encoder_sizes(size, depth)
    dec = _decoder_sizes(enc[-1], depth)
    offsets = []
    up = enc[-1]
    for level in range(depth - 1, -1, -1):
        up_size = 2 * up
        offsets.append((enc[level] - up_size) // 2)
        up = dec[depth - 1 - level]
    return offsets
