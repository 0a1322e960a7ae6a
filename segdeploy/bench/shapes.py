"""Check every benchmark shape against the model before any backend starts.

A wrong channel count used to surface as a torch RuntimeError or a numpy broadcast error,
an absurd shape as a MemoryError, and a shape below the model's minimum was timed silently
(its numbers mean nothing: the model gives wrong values there).
"""

from __future__ import annotations

from collections.abc import Sequence

from segdeploy.errors import UsageError
from segdeploy.manifest import ModelCard
from segdeploy.runtime.memory import DEFAULT_BYTES_PER_PIXEL, available_memory, format_bytes

Shape = tuple[int, int, int, int]


def estimate_bytes(shape: Sequence[int]) -> int:
    """Peak memory of one untiled run of an N x C x H x W batch (runtime.memory's estimate)."""
    n, _, h, w = (int(v) for v in shape)
    return n * h * w * DEFAULT_BYTES_PER_PIXEL


def validate_shapes(shapes: Sequence[Shape], card: ModelCard | None, *,
                    memory: int | None = None) -> None:
    """UsageError naming the shape and the rule it breaks (channels, minimum size, memory).

    card None: an ONNX without segdeploy metadata, whose graph checks the shape itself."""
    memory = available_memory() if memory is None else memory
    for shape in shapes:
        n, c, h, w = shape
        text = "x".join(map(str, shape))
        if card is not None:
            _check_model_rules(shape, card)
        need = estimate_bytes(shape)
        if memory is not None and need > memory:
            raise UsageError(f"--shape {text} needs about {format_bytes(need)} per run, more "
                             f"than the {format_bytes(memory)} of memory available",
                             expected="a batch that fits in memory",
                             fix="use a smaller batch or image size")


def _check_model_rules(shape: Shape, card: ModelCard) -> None:
    """Channels and minimum size from the model card."""
    n, c, h, w = shape
    text = "x".join(map(str, shape))
    if c != card.in_channels:
        raise UsageError(f"--shape {text} has {c} channels but the model takes "
                         f"{card.in_channels}",
                         expected=f"N x {card.in_channels} x H x W",
                         fix=f"use e.g. -s 1x{card.in_channels}x{h}x{w}, or -s {h}x{w}")
    if min(h, w) < card.min_size:
        raise UsageError(f"--shape {text} is below the model's minimum size "
                         f"{card.min_size}", expected=f"H and W >= {card.min_size}",
                         fix=f"use e.g. -s {n}x{c}x{max(h, card.min_size)}x"
                             f"{max(w, card.min_size)}")
