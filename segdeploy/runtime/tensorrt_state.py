"""Per-thread state of TensorRTRunner (context, stream, buffers, graphs, timing events) and
its TensorRT logger: kept apart so the runner module stays about orchestration."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from segdeploy.errors import DeviceError
from segdeploy.runtime import cuda_memory as cm


def make_logger(trt: Any) -> Any:
    """A TensorRT logger that keeps the last error messages for our exceptions."""

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if int(severity) <= 1:  # INTERNAL_ERROR, ERROR
                self.errors = (self.errors + [msg])[-10:]

    return _Logger()


class ThreadState:
    """Everything one thread needs to run the engine: context, stream, buffers, graphs.

    Made with its stream and execution context, so no method has to ask whether they exist;
    `free` releases everything once."""

    def __init__(self, stream: cm.Stream, context: Any) -> None:
        self.stream = stream
        self.context: Any = context
        self.freed = False
        self.device: dict[str, cm.DeviceBuffer] = {}
        self.host: dict[str, cm.PinnedBuffer] = {}
        self.addresses: dict[str, int] = {}
        self.profile: int | None = None
        self.shapes: Any = None
        # True after set_input_shape / a profile switch until the next plain enqueue: TensorRT
        # defers work to that enqueue, which a CUDA graph captured earlier does not contain.
        self.reshaped = True
        self.graphs: OrderedDict[Any, cm.CudaGraph | None] = OrderedDict()
        # four CUDA events around the copies in, the execution and the copies out; created by
        # the first `infer_phases` call of this thread
        self.events: list[cm.Event] = []

    def phase_events(self) -> list[cm.Event]:
        while len(self.events) < 4:
            self.events.append(cm.Event())
        return self.events

    def free(self) -> None:
        # Let queued work finish first (a call that failed half-way may have left copies or an
        # execution in flight on the stream), then release in dependency order: graphs, the
        # context (it points at our buffers, and TensorRT wants contexts released before their
        # engine), the buffers, events, and the stream last.
        if self.freed:
            return
        self.freed = True
        try:
            self.stream.synchronize()
        except DeviceError:
            pass  # a sticky CUDA error: freeing below still releases what it can
        for graph in self.graphs.values():
            if graph is not None:
                graph.free()
        self.graphs.clear()
        self.context = None
        releasable: list[cm.DeviceBuffer | cm.PinnedBuffer | cm.Event] = [
            *self.device.values(), *self.host.values(), *self.events]
        for buf in releasable:
            buf.free()
        self.device.clear()
        self.host.clear()
        self.events.clear()
        self.stream.free()
