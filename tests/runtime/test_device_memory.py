"""cuda-python memory layer and zero-copy pointer extraction (no GPU needed except where
marked)."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from segdeploy.errors import DeviceError, InputError
from segdeploy.runtime import DeviceView
from segdeploy.runtime import cuda_memory as cm
from segdeploy.runtime.device_arrays import (
    as_host_array,
    device_view,
    from_cuda_array_interface,
    from_dlpack_capsule,
)


def gpu_count() -> int:
    try:
        return cm.device_count()
    except DeviceError:
        return 0


def test_cuda_errors_become_device_errors_with_the_cuda_name():
    rt = cm.cudart()
    with pytest.raises(DeviceError, match="cudaErrorMemoryAllocation") as info:
        cm.check((rt.cudaError_t.cudaErrorMemoryAllocation, None), "cudaMalloc")
    assert "smaller batch" in str(info.value)
    assert cm.check((rt.cudaError_t.cudaSuccess, 7), "x") == 7
    assert cm.check((rt.cudaError_t.cudaSuccess,), "x") is None


@pytest.mark.skipif(gpu_count() > 0, reason="checks the message on a machine without a GPU")
def test_no_gpu_is_a_clear_device_error():
    with pytest.raises(DeviceError, match="cudaError") as info:
        cm.use_device(0)
    assert "nvidia-smi" in str(info.value)
    with pytest.raises(DeviceError):
        cm.DeviceBuffer(1024)


class CudaArrayInterfaceObject:
    """Any producer of `__cuda_array_interface__` (cupy, numba, torch); no memory behind it."""

    def __init__(self, ptr, shape, typestr="<f4", strides=None, stream=None):
        self.__cuda_array_interface__ = {"data": (ptr, False), "shape": shape,
                                         "typestr": typestr, "strides": strides,
                                         "version": 3, "stream": stream}


def test_cuda_array_interface_pointer():
    view = device_view(CudaArrayInterfaceObject(0x7F0000001000, (2, 3, 8, 8), stream=5))
    assert view.ptr == 0x7F0000001000 and view.shape == (2, 3, 8, 8)
    assert view.dtype == np.float32 and view.nbytes == 2 * 3 * 64 * 4 and view.stream == 5
    # explicit C-contiguous strides are fine, others are not
    from_cuda_array_interface(CudaArrayInterfaceObject(256, (2, 3), strides=(12, 4)))
    with pytest.raises(InputError, match="not C-contiguous"):
        device_view(CudaArrayInterfaceObject(256, (2, 3), strides=(4, 8)))
    wrapped = DeviceView(4096, (1, 3, 4, 4), np.float16)
    assert device_view(wrapped) is wrapped
    assert from_cuda_array_interface(wrapped).ptr == 4096
    with pytest.raises(InputError, match="null pointer"):
        DeviceView(0, (1, 2), np.float32)


def test_dlpack_capsule_pointer_shape_dtype():
    base = np.arange(2 * 3 * 5 * 7, dtype=np.float32).reshape(2, 3, 5, 7)
    sliced = base[1:]  # a byte offset into the same buffer
    view = from_dlpack_capsule(sliced.__dlpack__(), keepalive=sliced)
    assert view.ptr == sliced.ctypes.data == base.ctypes.data + 3 * 5 * 7 * 4
    assert view.shape == (1, 3, 5, 7) and view.dtype == np.float32
    ints = np.zeros((4, 2), np.uint8)
    assert from_dlpack_capsule(ints.__dlpack__()).dtype == np.uint8
    with pytest.raises(InputError, match="not C-contiguous"):
        from_dlpack_capsule(base.transpose(0, 1, 3, 2).__dlpack__())
    # host DLPack producers are host arrays: no device view, a zero-copy numpy array
    assert device_view(base) is None
    torch = pytest.importorskip("torch")
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert device_view(t) is None
    host = as_host_array(t)
    assert host.ctypes.data == t.data_ptr() and host.shape == (2, 3)


class GpuDLPackTensor:
    """A hand-made CUDA `dltensor` capsule, as a GPU producer (torch, cupy) hands over; no
    memory behind the pointer. Like torch it also offers __cuda_array_interface__ v2."""

    def __init__(self, ptr=0x7F0000000000, shape=(4, 8), code=2, bits=32):
        from segdeploy.runtime.device_arrays import DL_CUDA, _DLManagedTensor

        self._shape = (ctypes.c_int64 * len(shape))(*shape)
        self.managed = _DLManagedTensor()
        t = self.managed.dl_tensor
        t.data, t.ndim, t.shape = ptr, len(shape), self._shape
        t.device.device_type = DL_CUDA
        t.dtype.code, t.dtype.bits, t.dtype.lanes = code, bits, 1
        self.streams: list = []
        self.__cuda_array_interface__ = {"data": (ptr + 4096, False), "shape": shape,
                                         "typestr": "<f4", "version": 2}

    def __dlpack_device__(self):
        return self.managed.dl_tensor.device.device_type, 0

    def __dlpack__(self, stream=None):
        self.streams.append(stream)
        new_capsule = ctypes.pythonapi.PyCapsule_New
        new_capsule.restype = ctypes.py_object
        new_capsule.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        return new_capsule(ctypes.addressof(self.managed), b"dltensor", None)


def test_gpu_arrays_go_through_dlpack_with_our_stream():
    """torch offers both protocols, but its __cuda_array_interface__ (v2) names no stream:
    DLPack, whose producer makes our stream wait for its work, must win."""
    tensor = GpuDLPackTensor()
    view = device_view(tensor, stream=0x1234)
    assert view.ptr == 0x7F0000000000 and view.shape == (4, 8)  # not the CAI pointer
    assert tensor.streams == [0x1234]


def test_dlpack_capsule_of_sub_byte_dtype_is_an_input_error():
    """A capsule of 4-bit ints is refused with an InputError, not a crash in np.dtype('i0')."""
    for code, bits, ok in ((0, 4, False), (2, 16, True), (6, 8, True), (2, 12, False)):
        tensor = GpuDLPackTensor(code=code, bits=bits)
        capsule = tensor.__dlpack__()
        if ok:
            view = from_dlpack_capsule(capsule)
            assert view.shape == (4, 8) and view.dtype.itemsize == bits // 8
        else:
            with pytest.raises(InputError, match=f"{bits} bits"):
                from_dlpack_capsule(capsule)


@pytest.mark.gpu
def test_pinned_and_device_round_trip():
    cm.use_device(0)
    stream = cm.Stream()
    src, dst = cm.PinnedBuffer(4096), cm.PinnedBuffer(4096)
    dev = cm.DeviceBuffer(4096)
    try:
        data = np.arange(1024, dtype=np.float32)
        src.view(np.float32, (1024,))[:] = data
        cm.copy_async(dev.ptr, src.ptr, 4096, "htod", stream)
        cm.copy_async(dst.ptr, dev.ptr, 4096, "dtoh", stream)
        stream.synchronize()
        np.testing.assert_array_equal(dst.view(np.float32, (1024,)), data)
    finally:
        for buf in (src, dst, dev):
            buf.free()
            buf.free()  # idempotent
        stream.free()
