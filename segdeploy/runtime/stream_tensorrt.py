"""Double-buffered device inputs for `Segmenter.stream` on TensorRT.

The stream's stager thread copies frame i + 1 host -> pinned -> device on a CUDA stream of
its own while the inference thread runs frame i on the runner's stream: two streams, two
input slots, so copies overlap compute. A slot is handed to the runner as an aligned
DeviceView, which TensorRTRunner binds in place (no second copy); the inference thread
releases it once `infer` has synchronised its stream, i.e. once the engine has read it.
Slots are taken in frame order by one thread, so two slots cannot deadlock the pipeline.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from segdeploy.errors import DeviceError
from segdeploy.runtime import cuda_memory as cm
from segdeploy.runtime.device_arrays import DeviceView

SLOTS = 2
_POLL_S = 0.05


class DeviceStager:
    """`slots` device input buffers (and their pinned staging buffers) fed on one stream."""

    def __init__(self, *, slots: int = SLOTS, device: int = 0) -> None:
        self.slots = slots
        self.device = device
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(slots):
            self._free.put(slot)
        self._device: list[cm.DeviceBuffer | None] = [None] * slots
        self._pinned: list[cm.PinnedBuffer | None] = [None] * slots
        self._stream: cm.Stream | None = None
        self._lock = threading.Lock()

    def stage(self, feed: np.ndarray, stop: threading.Event | None = None
              ) -> tuple[DeviceView, int]:
        """Copy `feed` into a free slot and wait for the copy: (its DeviceView, the slot).

        Blocks while every slot is in use (the engine still reads them); gives up with a
        DeviceError when `stop` is set meanwhile."""
        slot = self._take(stop)
        try:
            feed = np.ascontiguousarray(feed)
            device, pinned = self._buffers(slot, feed.nbytes)
            np.copyto(pinned.view(feed.dtype, feed.shape), feed)
            assert self._stream is not None
            cm.copy_async(device.ptr, pinned.ptr, feed.nbytes, "htod", self._stream)
            self._stream.synchronize()
        except BaseException:
            self.release(slot)
            raise
        return DeviceView(device.ptr, feed.shape, feed.dtype, device_id=self.device), slot

    def release(self, slot: int) -> None:
        """The engine is done with `slot`'s input: it may take the next frame."""
        self._free.put(slot)

    def _take(self, stop: threading.Event | None) -> int:
        while True:
            try:
                return self._free.get(timeout=_POLL_S)
            except queue.Empty:
                if stop is not None and stop.is_set():
                    raise DeviceError("the stream stopped while waiting for a device "
                                      "input slot") from None

    def _buffers(self, slot: int, nbytes: int) -> tuple[cm.DeviceBuffer, cm.PinnedBuffer]:
        """The slot's buffers, (re)allocated when a frame needs more than they hold."""
        with self._lock:
            if self._stream is None:
                cm.use_device(self.device)
                self._stream = cm.Stream()
            device, pinned = self._device[slot], self._pinned[slot]
            if device is None or pinned is None or device.nbytes < nbytes:
                for old in (device, pinned):
                    if old is not None:
                        old.free()
                device, pinned = cm.DeviceBuffer(nbytes), cm.PinnedBuffer(nbytes)
                self._device[slot], self._pinned[slot] = device, pinned
            return device, pinned

    def close(self) -> None:
        """Free the buffers and the copy stream (after the stream's threads stopped)."""
        with self._lock:
            for buffers in (self._device, self._pinned):
                for i, buf in enumerate(buffers):
                    if buf is not None:
                        buf.free()
                        buffers[i] = None
            if self._stream is not None:
                self._stream.synchronize()
                self._stream.free()
                self._stream = None
