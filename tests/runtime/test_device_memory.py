"""cuda-python memory layer and zero-copy pointer extraction (no GPU needed except where
marked)."""

from __future__ import annotations

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
