"""CUDA memory, streams and graphs through cuda-python, with every error code checked.

NVIDIA's TensorRT samples moved from pycuda to cuda-python; we follow them. Every cudart call
returns a tuple whose first item is the error code: `check()` turns a non-success code into a
`DeviceError` carrying the CUDA error name. The cuda-python import is lazy, so importing this
module needs nothing but numpy; cuda-bindings itself imports fine without a GPU.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from segdeploy.errors import DeviceError, MissingDependencyError

_NO_GPU_ERRORS = {"cudaErrorNoDevice", "cudaErrorInsufficientDriver", "cudaErrorInvalidDevice",
                  "cudaErrorDevicesUnavailable", "cudaErrorSystemDriverMismatch"}


@functools.lru_cache(maxsize=1)
def cudart() -> Any:
    """The cuda-python runtime module (`cuda.bindings.runtime`, or `cuda.cudart` before 12.6)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python 11.x / early 12.x (Jetson JetPack 5)
        except ImportError as exc:
            raise MissingDependencyError("cuda-bindings", extra="tensorrt",
                                         purpose="for CUDA memory of the TensorRT runner") from exc
    return runtime


def error_name(err: Any) -> str:
    name = getattr(err, "name", None)
    return name if isinstance(name, str) else f"CUDA error {int(err)}"


def _fix_for(name: str) -> str:
    if name in _NO_GPU_ERRORS:
        return ("run on a machine with an NVIDIA GPU and a working driver (`nvidia-smi` must "
                "list it), or use ONNX Runtime on the CPU (Segmenter.load('model.onnx'))")
    if name == "cudaErrorMemoryAllocation":
        return "free GPU memory, or use a smaller batch / engine profile"
    return "check the GPU with `nvidia-smi`; rerun with CUDA_LAUNCH_BLOCKING=1 to locate it"


def check(result: Any, call: str) -> Any:
    """Unpack a cudart result tuple: raise DeviceError on failure, else return the value(s)."""
    if isinstance(result, tuple):
        err, values = result[0], result[1:]
    else:
        err, values = result, ()
    if int(err) != 0:
        name = error_name(err)
        raise DeviceError(f"CUDA call {call} failed with {name}", fix=_fix_for(name))
    if not values:
        return None
    return values[0] if len(values) == 1 else values


def device_count() -> int:
    return int(check(cudart().cudaGetDeviceCount(), "cudaGetDeviceCount"))


def use_device(device: int = 0) -> None:
    """Make `device` current for this thread; a clear DeviceError where there is no GPU."""
    count = device_count()
    if not 0 <= device < count:
        raise DeviceError(f"CUDA device {device} does not exist ({count} visible)",
                          expected=f"a device index below {count}",
                          fix="check CUDA_VISIBLE_DEVICES and `nvidia-smi`")
    check(cudart().cudaSetDevice(device), "cudaSetDevice")


def compute_capability(device: int = 0) -> str:
    """'major.minor' of `device`, e.g. '8.7' for Jetson Orin."""
    rt = cudart()
    attr = rt.cudaDeviceAttr
    major = check(rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMajor, device),
                  "cudaDeviceGetAttribute")
    minor = check(rt.cudaDeviceGetAttribute(attr.cudaDevAttrComputeCapabilityMinor, device),
                  "cudaDeviceGetAttribute")
    return f"{int(major)}.{int(minor)}"


class DeviceBuffer:
    """`nbytes` of device memory (cudaMalloc); `free()` is idempotent."""

    def __init__(self, nbytes: int):
        self.nbytes = max(int(nbytes), 1)
        self.ptr = int(check(cudart().cudaMalloc(self.nbytes), "cudaMalloc"))

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            check(cudart().cudaFree(ptr), "cudaFree")


class PinnedBuffer:
    """Page-locked host memory (cudaMallocHost) so copies can be asynchronous.

    `view(dtype, shape)` is a numpy array over the first bytes; it must not outlive `free()`.
    """

    def __init__(self, nbytes: int):
        self.nbytes = max(int(nbytes), 1)
        self.ptr = int(check(cudart().cudaMallocHost(self.nbytes), "cudaMallocHost"))
        self._bytes = np.ctypeslib.as_array((ctypes.c_uint8 * self.nbytes).from_address(self.ptr))

    def view(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * dtype.itemsize
        if nbytes > self.nbytes:
            raise DeviceError(f"pinned buffer of {self.nbytes} bytes cannot hold {nbytes} bytes",
                              fix="this is a bug in buffer sizing; please report it")
        return self._bytes[:nbytes].view(dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            ptr, self.ptr = self.ptr, 0
            self._bytes = np.empty(0, np.uint8)
            check(cudart().cudaFreeHost(ptr), "cudaFreeHost")


class Stream:
    """One CUDA stream (non-blocking with respect to the legacy default stream)."""

    def __init__(self) -> None:
        rt = cudart()
        self.handle = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking),
                            "cudaStreamCreateWithFlags")

    def __int__(self) -> int:
        return int(self.handle)

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def free(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            check(cudart().cudaStreamDestroy(handle), "cudaStreamDestroy")


def wait_for_stream(stream: int) -> None:
    """Block until a producer's stream (from __cuda_array_interface__) has finished."""
    check(cudart().cudaStreamSynchronize(stream), "cudaStreamSynchronize")


def copy_async(dst: int, src: int, nbytes: int, kind: str, stream: Stream) -> None:
    """cudaMemcpyAsync; `kind` is 'htod', 'dtoh' or 'dtod'."""
    rt = cudart()
    kinds = {"htod": rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
             "dtoh": rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
             "dtod": rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice}
    check(rt.cudaMemcpyAsync(dst, src, nbytes, kinds[kind], stream.handle), "cudaMemcpyAsync")


class CudaGraph:
    """A captured and instantiated CUDA graph of one enqueue, replayed with `launch()`."""

    def __init__(self, exec_handle: Any):
        self._exec = exec_handle

    @classmethod
    def capture(cls, stream: Stream, enqueue: Callable[[], bool]) -> CudaGraph | None:
        """Capture `enqueue()` on `stream`; None (nothing left captured) when capture fails.

        Some layers (data-dependent shapes, host syncs) cannot be captured: the caller then
        keeps calling `enqueue()` directly.
        """
        rt = cudart()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        if int(rt.cudaStreamBeginCapture(stream.handle, mode)[0]) != 0:
            return None
        try:
            ok = bool(enqueue())
        except Exception:  # noqa: BLE001 - any failure inside capture means "no graph"
            ok = False
        err, graph = rt.cudaStreamEndCapture(stream.handle)
        if int(err) != 0 or not ok or graph is None:
            if graph is not None and int(err) == 0:
                rt.cudaGraphDestroy(graph)
            rt.cudaGetLastError()  # clear the sticky-free capture error
            return None
        # cudaGraphInstantiateWithFlags(graph, flags) -> (err, exec) has one signature from
        # CUDA 11.4 to 13 (cuda-python 11.x, 12.x, cuda-bindings 13), whereas
        # cudaGraphInstantiate changed its arguments with CUDA 12.
        instantiate = getattr(rt, "cudaGraphInstantiateWithFlags", None)
        result = (instantiate or rt.cudaGraphInstantiate)(graph, 0)
        err, graph_exec = result[0], result[1]
        rt.cudaGraphDestroy(graph)
        if int(err) != 0:
            rt.cudaGetLastError()
            return None
        return cls(graph_exec)

    def launch(self, stream: Stream) -> None:
        check(cudart().cudaGraphLaunch(self._exec, stream.handle), "cudaGraphLaunch")

    def free(self) -> None:
        if self._exec is not None:
            handle, self._exec = self._exec, None
            check(cudart().cudaGraphExecDestroy(handle), "cudaGraphExecDestroy")


class Event:
    """A CUDA event (default flags, so it keeps timing); `free()` is idempotent.

    Recorded on a stream, it completes when the work queued before it does; the time between
    two completed events is GPU time, free of Python and enqueue overhead on the host.
    """

    def __init__(self) -> None:
        self.handle: Any = check(cudart().cudaEventCreate(), "cudaEventCreate")

    def record(self, stream: Stream) -> None:
        check(cudart().cudaEventRecord(self.handle, stream.handle), "cudaEventRecord")

    def synchronize(self) -> None:
        check(cudart().cudaEventSynchronize(self.handle), "cudaEventSynchronize")

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this event to `end` (both recorded and complete)."""
        return float(check(cudart().cudaEventElapsedTime(self.handle, end.handle),
                           "cudaEventElapsedTime"))

    def free(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            check(cudart().cudaEventDestroy(handle), "cudaEventDestroy")
