"""Read the device pointer, shape and dtype of a GPU array without importing its library.

Zero-copy inputs come from torch, cupy, jax... tensors. Both exchange protocols are
understood here with only numpy and ctypes: `__cuda_array_interface__` (a dict) and DLPack
(`__dlpack__()` returns a PyCapsule holding a `DLManagedTensor`; keeping the capsule alive
keeps the memory alive, and dropping it runs the producer's deleter). A raw device pointer is
wrapped in `DeviceView(ptr, shape, dtype)`.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from segdeploy.errors import InputError

# DLPack device types (dlpack.h)
DL_CPU, DL_CUDA, DL_CUDA_HOST, DL_CUDA_MANAGED = 1, 2, 3, 13
_DL_HOST_DEVICES = (DL_CPU, DL_CUDA_HOST)
_DL_GPU_DEVICES = (DL_CUDA, DL_CUDA_MANAGED)
# DLPack dtype codes -> numpy kind letters
_DL_CODES = {0: "i", 1: "u", 2: "f", 6: "b"}


@dataclass(frozen=True)
class DeviceView:
    """A C-contiguous array in GPU memory: where it is, its shape and dtype.

    `keepalive` holds whatever keeps the memory valid (the producer object or its DLPack
    capsule); `stream` is the producer's CUDA stream handle to wait for, when it gave one.
    """

    ptr: int
    shape: tuple[int, ...]
    dtype: np.dtype
    device_id: int = 0
    stream: int | None = None
    keepalive: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dtype", np.dtype(self.dtype))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if int(self.ptr) == 0 and self.nbytes:
            raise InputError("device array has a null pointer", expected="a valid device pointer")

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (int(self.ptr), False),
                "strides": None, "version": 3, "stream": self.stream}


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _DLDevice), ("ndim", ctypes.c_int32),
                ("dtype", _DLDataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p),
                ("deleter", ctypes.c_void_p)]


_capsule_get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_get_pointer.restype = ctypes.c_void_p
_capsule_get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _contiguous_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for dim in reversed(shape):
        strides.append(step)
        step *= max(dim, 1)
    return tuple(reversed(strides))


def _require_contiguous(shape: tuple[int, ...], strides: tuple[int, ...] | None,
                        itemsize: int, source: str) -> None:
    if strides is None:
        return
    want = _contiguous_strides(shape, itemsize)
    # strides of size-1 dims do not matter
    if any(s != w for s, w, d in zip(strides, want, shape, strict=True) if d > 1):
        raise InputError(f"{source} array is not C-contiguous (byte strides {strides})",
                         expected=f"contiguous strides {want}",
                         fix="pass x.contiguous() (torch) or cupy.ascontiguousarray(x)")


def from_cuda_array_interface(obj: Any) -> DeviceView:
    """Parse `__cuda_array_interface__` (versions 2 and 3)."""
    cai = obj.__cuda_array_interface__
    if cai.get("mask") is not None:
        raise InputError("masked CUDA arrays are not supported", expected="a plain device array")
    shape = tuple(int(s) for s in cai["shape"])
    dtype = np.dtype(cai["typestr"])
    strides = cai.get("strides")
    _require_contiguous(shape, None if strides is None else tuple(strides), dtype.itemsize,
                        "__cuda_array_interface__")
    ptr = int(cai["data"][0])
    stream = cai.get("stream")
    return DeviceView(ptr, shape, dtype, stream=None if stream is None else int(stream),
                      keepalive=obj)


def dlpack_device(obj: Any) -> tuple[int, int]:
    device_type, device_id = obj.__dlpack_device__()
    return int(device_type), int(device_id)


def from_dlpack_capsule(capsule: Any, *, keepalive: Any = None) -> DeviceView:
    """Read a legacy `dltensor` capsule; the returned view keeps the capsule alive."""
    try:
        address = _capsule_get_pointer(capsule, b"dltensor")
    except ValueError as exc:
        raise InputError("DLPack capsule was already consumed or is of an unknown version",
                         expected="a fresh capsule from x.__dlpack__()") from exc
    managed = _DLManagedTensor.from_address(address)
    t = managed.dl_tensor
    # bits must be whole bytes numpy knows (sub-byte int4 / packed bool would crash np.dtype)
    if (t.dtype.lanes != 1 or t.dtype.code not in _DL_CODES
            or t.dtype.bits not in (8, 16, 32, 64)):
        raise InputError(f"DLPack dtype code {t.dtype.code} ({t.dtype.bits} bits) with "
                         f"{t.dtype.lanes} lanes is not supported",
                         expected="int, uint, float or bool scalars of 8 to 64 bits")
    kind = _DL_CODES[t.dtype.code]
    dtype = np.dtype(np.bool_) if kind == "b" else np.dtype(f"{kind}{t.dtype.bits // 8}")
    shape = tuple(int(t.shape[i]) for i in range(t.ndim))
    strides = None
    if t.strides:
        strides = tuple(int(t.strides[i]) * dtype.itemsize for i in range(t.ndim))
    _require_contiguous(shape, strides, dtype.itemsize, "DLPack")
    ptr = int(t.data or 0) + int(t.byte_offset)
    return DeviceView(ptr, shape, dtype, device_id=int(t.device.device_id),
                      keepalive=(capsule, keepalive))


def device_view(obj: Any, *, stream: int | None = None) -> DeviceView | None:
    """The DeviceView of a GPU array, or None when `obj` lives in host memory.

    `stream` is the consumer's CUDA stream; DLPack producers make it wait for their work.
    """
    if isinstance(obj, np.ndarray):
        return None
    if isinstance(obj, DeviceView):
        return obj
    # DLPack first where a producer offers both: its `stream` handshake makes our stream wait
    # for the producer's pending work. torch's __cuda_array_interface__ is version 2 (no
    # stream), so a tensor just written on torch's stream would be read on ours unsynchronised.
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        device_type, _ = dlpack_device(obj)
        if device_type in _DL_HOST_DEVICES:
            return None
        if device_type not in _DL_GPU_DEVICES:
            raise InputError(f"array lives on DLPack device type {device_type}",
                             expected="host memory or an NVIDIA GPU (CUDA)")
        try:
            capsule = obj.__dlpack__(stream=stream if stream else None)
        except TypeError:  # producers predating the stream argument
            capsule = obj.__dlpack__()
        return from_dlpack_capsule(capsule, keepalive=obj)
    if hasattr(obj, "__cuda_array_interface__"):
        return from_cuda_array_interface(obj)
    return None


def as_host_array(obj: Any, name: str = "input") -> np.ndarray:
    """A numpy array for host data: ndarray as is, DLPack CPU tensors without a copy."""
    if isinstance(obj, np.ndarray):
        return obj
    if hasattr(obj, "__dlpack__"):
        return np.from_dlpack(obj)
    try:
        return np.asarray(obj)
    except Exception as exc:  # noqa: BLE001 - any conversion failure is the caller's input
        raise InputError(f"input {name!r} is a {type(obj).__name__} that numpy cannot read",
                         expected="a numpy array, a DLPack tensor or a CUDA array") from exc
