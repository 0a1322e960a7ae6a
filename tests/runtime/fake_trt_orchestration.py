"""Test doubles of the TensorRT and cuda-python APIs for testing OUR orchestration only.

They exercise TensorRTRunner's bookkeeping (buffer sizes, profile switching, addresses,
copies, CUDA-graph capture and fallback, per-thread contexts, cleanup) on a machine without
a GPU. They prove nothing about TensorRT itself: "device" memory is host memory, the
"engine" computes logits[:, k] = input[:, k % C] * (k + 1), and a captured "graph" replays
recorded Python calls. CUDA events read a per-stream clock that only our doubles advance,
by fixed costs per operation (COST_MS), so phase times are exact and deterministic: they check
which operations our code queued between which events, never how fast anything is.
The real engine is tested in test_tensorrt_runner_gpu.py.
"""

from __future__ import annotations

import ctypes
import enum
import hashlib
import json
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.manifest import ExportInfo, ModelCard, PlanManifest
from segdeploy.runtime.plan_compat import manifest_path


class _Err(int):
    """Stands in for cudaError_t: an int with a name."""

    def __new__(cls, value: int, name: str) -> _Err:
        obj = super().__new__(cls, value)
        obj.name = name
        return obj


OK = _Err(0, "cudaSuccess")
INVALID_HANDLE = _Err(400, "cudaErrorInvalidResourceHandle")

#: stream time each queued operation costs in these doubles (milliseconds, arbitrary but fixed)
COST_MS = {"cudaMemcpyHostToDevice": 0.25, "cudaMemcpyDeviceToHost": 0.5,
           "cudaMemcpyDeviceToDevice": 0.125, "enqueue": 4.0, "graph_launch": 1.0}


class FakeCudartForOrchestrationTest:
    """cudart calls on host memory; tracks live allocations and stream capture."""

    cudaStreamNonBlocking = 1
    cudaMemcpyKind = enum.Enum("cudaMemcpyKind", "cudaMemcpyHostToDevice "
                               "cudaMemcpyDeviceToHost cudaMemcpyDeviceToDevice")
    cudaDeviceAttr = enum.Enum("cudaDeviceAttr", "cudaDevAttrComputeCapabilityMajor "
                               "cudaDevAttrComputeCapabilityMinor")
    cudaStreamCaptureMode = enum.Enum("cudaStreamCaptureMode",
                                      "cudaStreamCaptureModeThreadLocal")

    def __init__(self, capability: tuple[int, int] = (8, 7)) -> None:
        self.capability = capability
        self.live: dict[int, Any] = {}
        self.sizes: dict[int, int] = {}  # ptr -> bytes asked for
        self.malloc_sizes: list[int] = []
        self.capturing: dict[int, list] = {}
        self.copies: list[str] = []
        self._next_stream = 100
        self.stream_ms: dict[int, float] = {}  # per-stream clock (see COST_MS)
        self.events: dict[int, float | None] = {}  # live events -> stream time when recorded
        self._next_event = 1000
        self._lock = threading.Lock()

    # memory
    def _alloc(self, nbytes: int) -> tuple[_Err, int]:
        raw = ctypes.create_string_buffer(nbytes + 256)
        ptr = (ctypes.addressof(raw) + 255) // 256 * 256
        with self._lock:
            self.live[ptr] = raw
            self.sizes[ptr] = nbytes
        return OK, ptr

    def cudaMalloc(self, nbytes: int) -> tuple[_Err, int]:
        self.malloc_sizes.append(nbytes)
        return self._alloc(nbytes)

    def cudaMallocHost(self, nbytes: int) -> tuple[_Err, int]:
        return self._alloc(nbytes)

    def cudaFree(self, ptr: int) -> tuple[_Err]:
        with self._lock:
            del self.live[ptr]
            del self.sizes[ptr]
        return (OK,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst: int, src: int, count: int, kind: Any, stream: int):
        self.copies.append(kind.name)
        self.advance(stream, COST_MS[kind.name])
        ctypes.memmove(dst, src, count)
        return (OK,)

    # devices
    def cudaGetDeviceCount(self) -> tuple[_Err, int]:
        return OK, 1

    def cudaSetDevice(self, device: int) -> tuple[_Err]:
        return (OK,)

    def cudaDeviceGetAttribute(self, attr: Any, device: int) -> tuple[_Err, int]:
        major = attr.name.endswith("Major")
        return OK, self.capability[0] if major else self.capability[1]

    def cudaGetLastError(self) -> tuple[_Err]:
        return (OK,)

    # streams and graphs
    def cudaStreamCreateWithFlags(self, flags: int) -> tuple[_Err, int]:
        with self._lock:
            self._next_stream += 1
            return OK, self._next_stream

    def cudaStreamDestroy(self, stream: int) -> tuple[_Err]:
        return (OK,)

    def cudaStreamSynchronize(self, stream: int) -> tuple[_Err]:
        return (OK,)

    def cudaStreamBeginCapture(self, stream: int, mode: Any) -> tuple[_Err]:
        self.capturing[int(stream)] = []
        return (OK,)

    def cudaStreamEndCapture(self, stream: int) -> tuple[_Err, Any]:
        recorded = self.capturing.pop(int(stream))
        return OK, ("graph", recorded)

    def cudaGraphInstantiate(self, graph: Any, flags: int) -> tuple[_Err, Any]:
        return OK, {"calls": list(graph[1]), "launches": 0}

    cudaGraphInstantiateWithFlags = cudaGraphInstantiate

    def cudaGraphDestroy(self, graph: Any) -> tuple[_Err]:
        return (OK,)

    def cudaGraphLaunch(self, graph_exec: dict, stream: int) -> tuple[_Err]:
        graph_exec["launches"] += 1
        self.advance(stream, COST_MS["graph_launch"])
        for call in graph_exec["calls"]:
            call()
        return (OK,)

    def cudaGraphExecDestroy(self, graph_exec: Any) -> tuple[_Err]:
        return (OK,)

    # events: stamps of the stream clock
    def advance(self, stream: Any, ms: float) -> None:
        """Queue `ms` of work on `stream` (ignored while it is being captured)."""
        if stream is not None and int(stream) not in self.capturing:
            with self._lock:
                self.stream_ms[int(stream)] = self.stream_ms.get(int(stream), 0.0) + ms

    def cudaEventCreate(self) -> tuple[_Err, int]:
        with self._lock:
            self._next_event += 1
            self.events[self._next_event] = None
            return OK, self._next_event

    def cudaEventRecord(self, event: int, stream: int) -> tuple[_Err]:
        if event not in self.events:
            return (INVALID_HANDLE,)
        if int(stream) in self.capturing:  # would become a node of the graph, not a time
            raise AssertionError("event recorded on a stream under capture")
        self.events[event] = self.stream_ms.get(int(stream), 0.0)
        return (OK,)

    def cudaEventSynchronize(self, event: int) -> tuple[_Err]:
        return (OK,) if event in self.events else (INVALID_HANDLE,)

    def cudaEventElapsedTime(self, start: int, end: int) -> tuple[_Err, float]:
        a, b = self.events.get(start), self.events.get(end)
        if a is None or b is None:  # unknown, destroyed or never recorded
            return INVALID_HANDLE, 0.0
        return OK, b - a

    def cudaEventDestroy(self, event: int) -> tuple[_Err]:
        with self._lock:
            if event not in self.events:
                return (INVALID_HANDLE,)
            del self.events[event]
            return (OK,)


class _DataType(enum.Enum):
    FLOAT = 0
    INT32 = 3


class FakeTrtContextForOrchestrationTest:
    def __init__(self, engine: FakeTrtEngineForOrchestrationTest) -> None:
        self.engine = engine
        # TensorRT < 10 gives profile 0 to the first context only; later ones start with none
        self.profile = -1 if engine.exclusive_profiles and engine.contexts else 0
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.executions = 0
        # like TensorRT, shape / profile changes leave work for the next plain enqueue; a
        # graph replayed before that enqueue runs on stale state (counted, should stay 0)
        self.deferred = False
        self.stale_replays = 0
        self.nvtx_verbosity = "DETAILED"  # what `segdeploy build` plans carry

    def set_optimization_profile_async(self, index: int, stream: int) -> bool:
        if self.engine.exclusive_profiles and any(
                c.profile == index for c in self.engine.contexts if c is not self):
            return False  # TensorRT < 10: "profile has been chosen by another context"
        self.profile = index
        self.deferred = True
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        lo, _, hi = self.engine.get_tensor_profile_shape(name, self.profile)
        if not all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True)):
            return False
        self.shapes[name] = tuple(shape)
        self.deferred = True
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        n, _, h, w = self.shapes["input"]
        return self.shapes["input"] if name == "input" else (n, self.engine.classes, h, w)

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.addresses[name] = int(ptr)
        return True

    def execute_async_v3(self, stream: int) -> bool:
        def run(replay: bool) -> None:
            self.executions += 1
            self.stale_replays += replay and self.deferred
            shape = self.shapes["input"]
            out_shape = self.get_tensor_shape("logits")
            room = self.engine.cudart.sizes.get(self.addresses["logits"])
            if room is not None and room < np.prod(out_shape) * 4:  # would write past the end
                raise AssertionError(f"output buffer of {room} bytes for shape {out_shape}")
            x = _array_at(self.addresses["input"], shape, np.float32)
            out = _array_at(self.addresses["logits"], out_shape, np.float32)
            for k in range(self.engine.classes):
                out[:, k] = x[:, k % shape[1]] * (k + 1)

        recording = self.engine.cudart.capturing.get(int(stream))
        if recording is not None:
            if self.engine.refuse_capture:
                return False
            recording.append(lambda: run(replay=True))
        else:
            run(replay=False)
            self.deferred = False
            self.engine.cudart.advance(stream, COST_MS["enqueue"])
        return True


def _array_at(ptr: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    count = int(np.prod(shape))
    buf = (ctypes.c_byte * (count * np.dtype(dtype).itemsize)).from_address(ptr)
    return np.frombuffer(buf, dtype=dtype).reshape(shape)


class FakeTrtEngineForOrchestrationTest:
    PROFILES = [((1, 3, 8, 8), (1, 3, 32, 32), (2, 3, 64, 64)),
                ((1, 3, 64, 64), (1, 3, 96, 96), (1, 3, 128, 160))]

    def __init__(self, cudart: FakeCudartForOrchestrationTest, classes: int = 4,
                 refuse_capture: bool = False, exclusive_profiles: bool = False) -> None:
        self.cudart = cudart
        self.classes = classes
        self.refuse_capture = refuse_capture
        self.exclusive_profiles = exclusive_profiles  # TensorRT < 10 profile ownership
        self.num_io_tensors = 2
        self.num_optimization_profiles = len(self.PROFILES)
        self.contexts: list[FakeTrtContextForOrchestrationTest] = []

    def get_tensor_name(self, i: int) -> str:
        return ["input", "logits"][i]

    def get_tensor_mode(self, name: str) -> str:
        return "INPUT" if name == "input" else "OUTPUT"

    def get_tensor_dtype(self, name: str) -> _DataType:
        return _DataType.FLOAT

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        return (-1, 3, -1, -1) if name == "input" else (-1, self.classes, -1, -1)

    def get_tensor_profile_shape(self, name: str, profile: int):
        return self.PROFILES[profile]

    def create_execution_context(self) -> FakeTrtContextForOrchestrationTest:
        ctx = FakeTrtContextForOrchestrationTest(self)
        self.contexts.append(ctx)
        return ctx


def fake_tensorrt_module(engine: FakeTrtEngineForOrchestrationTest | None,
                         version: str = "10.3.0") -> types.ModuleType:
    """A module object standing in for `tensorrt` (only what TensorRTRunner touches)."""
    mod = types.ModuleType("tensorrt")
    mod.__version__ = version

    class ILogger:
        def __init__(self) -> None:
            pass

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> Any:
            if engine is None:
                self.logger.log(1, "fake: serialization assertion failed")
            return engine

    mod.ILogger = ILogger
    mod.Runtime = Runtime
    mod.TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    mod.ProfilingVerbosity = types.SimpleNamespace(LAYER_NAMES_ONLY="LAYER_NAMES_ONLY")
    return mod


def write_fake_plan(folder: Path) -> Path:
    """A plan file and its .plan.json that match the engine double and fake_tensorrt_module."""
    plan = folder / "model.plan"
    plan.write_bytes(b"serialized engine")
    card = ModelCard(arch="fake", num_classes=4, classes=list("abcd"), output_stride=1,
                     min_size=8)
    manifest = PlanManifest(
        export=ExportInfo(card=card), tensorrt_version="10.3.0.26", precision="fp32",
        profiles=[], io=[{"name": "input"}, {"name": "logits"}], onnx_sha256="",
        compute_capability="8.7", plan_sha256=hashlib.sha256(b"serialized engine").hexdigest())
    manifest_path(plan).write_text(json.dumps(manifest.to_dict()))
    return plan
