"""Pure logic of the TensorRT runner: dtypes, buffer sizes, profile choice, pointer alignment.

Kept apart from tensorrt_runner.py so it is tested on machines without TensorRT or a GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from segdeploy.errors import ArtifactError, InputError
from segdeploy.runtime.runner import TensorSpec, check_shape, profiles_containing

#: TensorRT DataType names -> numpy; BF16 / FP8 / INT4 / FP4 have no numpy dtype
_TRT_TO_NUMPY = {
    "FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
    "INT64": np.int64, "UINT8": np.uint8, "BOOL": np.bool_,
}
#: TensorRT wants I/O addresses aligned to 256 bytes; others are staged through our buffer
TENSOR_ALIGNMENT = 256


def numpy_dtype(trt_dtype: Any) -> np.dtype:
    """trt.DataType.FLOAT (or 'FLOAT' / 'DataType.FLOAT') -> numpy float32."""
    name = getattr(trt_dtype, "name", None) or str(trt_dtype)
    name = name.split(".")[-1].upper()
    if name not in _TRT_TO_NUMPY:
        raise ArtifactError(f"engine I/O tensor has TensorRT type {name}, which numpy cannot hold",
                            expected=f"one of {sorted(_TRT_TO_NUMPY)}",
                            fix="export the ONNX with float32 (or uint8 / int32) inputs and "
                                "outputs and rebuild the engine")
    return np.dtype(_TRT_TO_NUMPY[name])


def volume(shape: Sequence[int]) -> int:
    """Number of elements; a dynamic (-1) dim left unresolved is an ArtifactError."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise ArtifactError(f"tensor shape {tuple(dims)} is still dynamic after setting the "
                            "input shapes", expected="output shapes determined by input shapes",
                            fix="export without data-dependent output shapes")
    return int(np.prod(dims, dtype=np.int64))


def buffer_nbytes(shapes: Sequence[Sequence[int]], dtype: np.dtype) -> int:
    """Bytes to hold the largest of `shapes` (one per profile's maximum)."""
    return max((volume(s) for s in shapes), default=0) * np.dtype(dtype).itemsize


def is_aligned(ptr: int, alignment: int = TENSOR_ALIGNMENT) -> bool:
    return int(ptr) % alignment == 0


def spec_shape(dims: Sequence[int]) -> tuple[int | None, ...]:
    """Engine dims (-1 for dynamic) -> TensorSpec shape (None for dynamic)."""
    return tuple(None if int(d) < 0 else int(d) for d in dims)


def select_profile(specs: Mapping[str, TensorSpec], shapes: Mapping[str, Sequence[int]],
                   current: int | None = None) -> int:
    """The optimisation profile that holds every input shape (the current one if it does).

    An input outside every profile raises InputError naming the allowed range.
    """
    common: set[int] | None = None
    for name, spec in specs.items():
        if not spec.profiles:
            continue
        fits = profiles_containing(spec, shapes[name])
        if not fits:
            check_shape(spec, shapes[name])  # raises with the allowed ranges
        common = set(fits) if common is None else common & set(fits)
    if common is None:
        return 0 if current is None else current
    if not common:
        raise InputError(f"input shapes {dict(shapes)} fit no single engine profile",
                         expected="; ".join(s.describe() for s in specs.values()))
    if current in common:
        return int(current)
    return min(common)


def shapes_key(shapes: Mapping[str, Sequence[int]]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Hashable key of a set of input shapes (for shape caching and CUDA graphs)."""
    return tuple(sorted((n, tuple(int(d) for d in s)) for n, s in shapes.items()))
