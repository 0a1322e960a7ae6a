"""TensorRT backend (8.5 to 11, name-based tensor API) with cuda-python memory.

Activation reads the `.plan.json` manifest, refuses a plan from another TensorRT version or
GPU, then deserialises the engine. Each thread that calls `infer` gets its own execution
context, CUDA stream, device buffers (sized from the profiles' maximum shapes) and pinned host
buffers, kept in a `threading.local`: one runner can serve several threads. (TensorRT < 10
lets only one context use a given optimisation profile at a time, so a new thread takes the
first free one; build the engine with one profile per concurrent thread there.) Each call sets
the input shapes, copies in, executes and copies out asynchronously on the thread's stream,
then synchronises once; `infer_phases` is the same call with CUDA events between the phases
(PhaseTimes), for `segdeploy bench` (the statistics stay in bench/). With `cuda_graph=True`
the execution is captured once per input shape and replayed while the shape stays the same
(a shape change first runs one plain enqueue, as TensorRT requires); a layer that cannot be
captured falls back to plain execution. Inputs already on the GPU (a DeviceView, or anything
with `__cuda_array_interface__` / DLPack: torch, cupy) are used in place.
Call `close()` (or use `with`) after all threads are done with the runner.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import ArtifactError, DeviceError, InputError, require
from segdeploy.manifest import PlanManifest
from segdeploy.runtime import cuda_memory as cm
from segdeploy.runtime.device_arrays import DeviceView, as_host_array, device_view
from segdeploy.runtime.plan_compat import check_plan_compat, check_plan_file, read_plan_manifest
from segdeploy.runtime.runner import Runner, SizeRule, TensorSpec
from segdeploy.runtime.tensorrt_shapes import (
    buffer_nbytes,
    is_aligned,
    numpy_dtype,
    select_profile,
    shapes_key,
    spec_shape,
    volume,
)
from segdeploy.runtime.tensorrt_state import ThreadState, make_logger

MAX_GRAPHS_PER_THREAD = 16


@dataclass(frozen=True)
class PhaseTimes:
    """GPU milliseconds of one `TensorRTRunner.infer_phases` call, between CUDA events on the
    calling thread's stream: the input copies (pinned host -> device; ~0 for device inputs
    bound in place), the engine's execution (a CUDA graph replay or a plain enqueue, whichever
    `infer` would run) and the output copies (device -> pinned host). Host-side work (staging
    numpy data, the final copy out of the pinned buffers) is in none of them."""

    h2d_ms: float
    compute_ms: float
    d2h_ms: float

    @classmethod
    def between(cls, events: Sequence[cm.Event]) -> PhaseTimes:
        """Times between four completed events: start, inputs in, executed, outputs out."""
        return cls(*(a.elapsed_ms(b) for a, b in zip(events[:-1], events[1:], strict=True)))


class TensorRTRunner(Runner):
    """Runs a serialised TensorRT engine (.plan / .engine).

    manifest: the PlanManifest (default: read from `PLAN.json`); check_manifest=False runs a
    bare plan without one (no version/GPU check). cuda_graph: capture per input shape.
    """

    name = "tensorrt"

    def __init__(self, path: str | os.PathLike[str], *, manifest: PlanManifest | None = None,
                 check_manifest: bool = True, verify_sha256: bool = True,
                 cuda_graph: bool = False, device: int = 0) -> None:
        super().__init__()
        self.path = Path(path)
        self.manifest = manifest
        self.check_manifest = check_manifest
        self.verify_sha256 = verify_sha256
        self.cuda_graph = cuda_graph
        self.device = device
        self.engine: Any = None
        self._runtime: Any = None
        self._logger: Any = None
        self._local = threading.local()
        self._states: list[ThreadState] = []
        self._lock = threading.Lock()
        self._trt: Any = None
        self._io: dict[str, tuple[str, np.dtype]] = {}  # name -> ("input"|"output", dtype)
        self._nbytes: dict[str, int] | None = None  # buffer bytes per I/O tensor (all profiles)

    # -- lifecycle -------------------------------------------------------------------------
    def _activate(self) -> None:
        if self.check_manifest and self.manifest is None:
            self.manifest = read_plan_manifest(self.path)
        check_plan_file(self.path, self.manifest, verify_sha256=self.verify_sha256)
        trt = require("tensorrt", extra="tensorrt", purpose="to run TensorRT plans")
        self._trt = trt
        cm.cudart()
        cm.use_device(self.device)
        if self.check_manifest and self.manifest is not None:
            check_plan_compat(self.manifest, tensorrt_version=trt.__version__,
                              compute_capability=cm.compute_capability(self.device),
                              plan=self.path)
        self._logger = make_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        if self.manifest is not None and self.manifest.build_flags.get("version_compatible"):
            # A version-compatible plan embeds its own lean runtime, which TensorRT only
            # runs when the host process allows it (TensorRT >= 8.6).
            self._runtime.engine_host_code_allowed = True
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise ArtifactError(
                f"TensorRT could not deserialise {self.path} "
                f"({'; '.join(self._logger.errors) or 'no message'})",
                expected="a complete plan built by this TensorRT version for this GPU",
                fix="rebuild it on this machine with `segdeploy build MODEL.onnx`")
        self.engine = engine
        trt_input = trt.TensorIOMode.INPUT
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            mode = "input" if engine.get_tensor_mode(name) == trt_input else "output"
            self._io[name] = (mode, numpy_dtype(engine.get_tensor_dtype(name)))
        if self.manifest is not None and self.manifest.io:
            expected = sorted(str(t.get("name")) for t in self.manifest.io)
            if expected != sorted(self._io):
                raise ArtifactError(f"{self.path.name} has I/O tensors {sorted(self._io)} but "
                                    f"its manifest lists {expected}",
                                    fix="the plan and its .plan.json do not belong together: "
                                        "rebuild with `segdeploy build MODEL.onnx`")

    def _deactivate(self) -> None:
        with self._lock:
            states, self._states = self._states, []
        errors = []
        for state in states:
            try:
                state.free()
            except DeviceError as exc:  # free the rest before reporting
                errors.append(exc)
        self._local = threading.local()
        self._nbytes = None
        self.engine = None
        self._runtime = None
        if errors:
            raise errors[0]

    # -- specs -----------------------------------------------------------------------------
    def _profiles(self, name: str
                  ) -> tuple[tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]:
        out = []
        for p in range(self.engine.num_optimization_profiles):
            lo, opt, hi = self.engine.get_tensor_profile_shape(name, p)
            out.append((tuple(lo), tuple(opt), tuple(hi)))
        return tuple(out)

    @property
    def host_memory(self) -> bool:
        return False  # activations live in GPU memory

    def size_rule(self) -> SizeRule | None:
        return SizeRule.from_export_info(self.manifest.export) if self.manifest else None

    def metadata(self) -> dict[str, str]:
        """The card from the plan's .plan.json sidecar, as ONNX metadata_props."""
        if self.manifest is None and self.check_manifest:
            self.manifest = read_plan_manifest(self.path)
        return self.manifest.export.to_metadata_props() if self.manifest else {}

    def _input_specs(self) -> dict[str, TensorSpec]:
        return {n: TensorSpec(n, dt, spec_shape(self.engine.get_tensor_shape(n)),
                              self._profiles(n))
                for n, (mode, dt) in self._io.items() if mode == "input"}

    def _output_specs(self) -> dict[str, TensorSpec]:
        return {n: TensorSpec(n, dt, spec_shape(self.engine.get_tensor_shape(n)))
                for n, (mode, dt) in self._io.items() if mode == "output"}

    # -- per-thread state ------------------------------------------------------------------
    def _state(self) -> ThreadState:
        state = getattr(self._local, "state", None)
        if state is None:
            state = self._new_state()
            self._local.state = state
        return state

    def _new_state(self) -> ThreadState:
        cm.use_device(self.device)  # the current device is per thread
        # Under the lock: sizing walks every profile on the first context, and on TensorRT < 10
        # a profile serves one context at a time, so contexts must not race for them.
        with self._lock:
            stream = cm.Stream()
            context = self.engine.create_execution_context()
            if context is None:
                stream.free()
                raise DeviceError("TensorRT could not create an execution context "
                                  f"({'; '.join(self._logger.errors) or 'out of GPU memory?'})",
                                  fix="free GPU memory or use fewer threads")
            state = ThreadState(stream, context)
            self._states.append(state)
            # `segdeploy build` keeps DETAILED profiling in the plan (its FP16 check reads the
            # engine inspector); detailed NVTX ranges would slow every enqueue, so turn them down.
            trt = self._trt
            state.context.nvtx_verbosity = trt.ProfilingVerbosity.LAYER_NAMES_ONLY
            if self._nbytes is None:
                self._nbytes = self._buffer_sizes(state)
            if state.profile is None:
                self._claim_profile(state)
        for name, nbytes in self._nbytes.items():
            state.device[name] = cm.DeviceBuffer(nbytes)
            state.host[name] = cm.PinnedBuffer(nbytes)
            self._set_address(state, name, state.device[name].ptr)
        state.shapes = None
        return state

    def _buffer_sizes(self, state: ThreadState) -> dict[str, int]:
        """Bytes per I/O tensor for the largest shape of every profile (inputs at their
        maximum, outputs as the context reports them at those inputs). Runs once, on the first
        thread's context, which stays on the last profile afterwards."""
        inputs = self.input_specs()
        sizes: dict[str, list[tuple[int, ...]]] = {n: [] for n in self._io}
        for p in range(self.engine.num_optimization_profiles):
            self._set_profile(state, p)
            for name, spec in inputs.items():
                hi = spec.profiles[p][2]
                sizes[name].append(hi)
                if not state.context.set_input_shape(name, hi):
                    raise ArtifactError(f"engine rejects its own maximum shape {hi} for {name!r}")
            for name, (mode, _) in self._io.items():
                if mode == "output":
                    sizes[name].append(tuple(state.context.get_tensor_shape(name)))
        return {name: buffer_nbytes(sizes[name], dtype) for name, (_, dtype) in self._io.items()}

    def _claim_profile(self, state: ThreadState) -> None:
        """Select the first profile no other context holds. TensorRT < 10 gives each profile to
        one execution context at a time (setOptimizationProfileAsync fails for one in use), so
        a second thread must not insist on profile 0; TensorRT >= 10 shares them (always 0)."""
        count = self.engine.num_optimization_profiles
        logged = self._logger.errors
        for p in range(count):
            if state.context.set_optimization_profile_async(p, int(state.stream)):
                state.stream.synchronize()
                state.profile = p
                self._logger.errors = logged  # drop the "profile in use" lines of the search
                return
        raise DeviceError(f"all {count} optimisation profile(s) of {self.path.name} are in use by "
                          "other threads' execution contexts (TensorRT < 10 lets a profile serve "
                          "one context at a time)",
                          fix="on TensorRT 8.x build the engine with one profile per concurrent "
                              "thread, or call the runner from fewer threads")

    def _set_profile(self, state: ThreadState, profile: int) -> None:
        if state.profile == profile:
            return
        if not state.context.set_optimization_profile_async(profile, int(state.stream)):
            raise DeviceError(f"TensorRT could not select optimisation profile {profile} "
                              f"({'; '.join(self._logger.errors) or 'in use by another context?'})",
                              fix="on TensorRT < 10 give each thread its own profile at build")
        state.stream.synchronize()
        state.profile = profile
        state.shapes = None
        state.reshaped = True

    def _set_address(self, state: ThreadState, name: str, ptr: int) -> None:
        if state.addresses.get(name) != ptr:
            if not state.context.set_tensor_address(name, ptr):
                raise DeviceError(f"TensorRT refused the address of {name!r}",
                                  fix="pass contiguous device memory aligned to 256 bytes")
            state.addresses[name] = ptr

    # -- inference -------------------------------------------------------------------------
    def _as_feed(self, name: str, value: Any) -> np.ndarray | DeviceView:
        if isinstance(value, np.ndarray):
            return value
        stream = int(self._state().stream) if self.is_active else None
        view = device_view(value, stream=stream)
        return view if view is not None else as_host_array(value, name)

    def infer_phases(self, feeds: Mapping[str, Any], *, output_names: Sequence[str] | None = None,
                     check: bool = True) -> tuple[dict[str, np.ndarray], PhaseTimes]:
        """`infer`, plus the GPU time of its three phases (see PhaseTimes).

        It is the same code path as `infer` with CUDA events recorded around the phases, so
        CUDA graphs are captured and replayed exactly as there. Warm up at a shape first: the
        first call at a new shape (TensorRT's deferred shape work, a graph capture) is slower.
        """
        feeds, names = self._checked_call(feeds, output_names, check)
        events = self._state().phase_events()
        outputs = self._infer(feeds, names, events)
        return outputs, PhaseTimes.between(events)

    def _infer(self, feeds: Mapping[str, Any], output_names: list[str],
               events: Sequence[cm.Event] = ()) -> dict[str, np.ndarray]:
        """Set shapes, stage and copy inputs in, execute, copy outputs out on the thread's
        stream, then synchronise once; with four `events`, record them around the phases."""
        state = self._state()
        specs = self.input_specs()
        shapes = {n: tuple(int(d) for d in feeds[n].shape) for n in specs}
        self._set_profile(state, select_profile(specs, shapes, state.profile))
        key = shapes_key(shapes)
        if state.shapes != key:
            for name, shape in shapes.items():
                if not state.context.set_input_shape(name, shape):
                    raise InputError(f"TensorRT rejected shape {shape} for input {name!r}",
                                     expected=specs[name].describe())
            state.shapes = key
            state.reshaped = True
            self._fit_outputs(state)
        copies_in = self._bind_inputs(state, feeds, shapes)
        out_shapes = {n: tuple(int(d) for d in state.context.get_tensor_shape(n))
                      for n in output_names}
        stream = state.stream

        def mark(i: int) -> None:
            if events:
                events[i].record(stream)

        mark(0)
        for dst, src, nbytes, kind in copies_in:
            cm.copy_async(dst, src, nbytes, kind, stream)
        mark(1)
        self._execute(state, (state.profile, key, tuple(state.addresses[n] for n in specs)))
        mark(2)
        for name, shape in out_shapes.items():
            cm.copy_async(state.host[name].ptr, state.device[name].ptr,
                          volume(shape) * self._io[name][1].itemsize, "dtoh", stream)
        mark(3)
        stream.synchronize()
        return {n: state.host[n].view(self._io[n][1], s).copy() for n, s in out_shapes.items()}

    def _bind_inputs(self, state: ThreadState, feeds: Mapping[str, Any],
                     shapes: dict[str, tuple[int, ...]]) -> list[tuple[int, int, int, str]]:
        """Stage host inputs in the pinned buffers and bind every input's device address;
        returns the copies (dst, src, nbytes, kind) still to queue. Aligned device inputs are
        bound in place (no copy); misaligned ones go through our device buffer."""
        copies = []
        for name, shape in shapes.items():
            value, dtype = feeds[name], self._io[name][1]
            nbytes = volume(shape) * dtype.itemsize
            dev = state.device[name]
            if isinstance(value, DeviceView):
                if value.stream:
                    cm.wait_for_stream(value.stream)
                if is_aligned(value.ptr):
                    self._set_address(state, name, value.ptr)
                    continue
                copies.append((dev.ptr, value.ptr, nbytes, "dtod"))
            else:
                np.copyto(state.host[name].view(dtype, shape), value, casting="same_kind")
                copies.append((dev.ptr, state.host[name].ptr, nbytes, "htod"))
            self._set_address(state, name, dev.ptr)
        return copies

    def _fit_outputs(self, state: ThreadState) -> None:
        """Grow an output's buffers when the shapes just set need more than the profile
        maxima gave (an output need not be largest at the largest input): TensorRT would
        otherwise write past the end. A data-dependent (-1) output shape raises here."""
        for name, (mode, dtype) in self._io.items():
            if mode != "output":
                continue
            nbytes = volume(state.context.get_tensor_shape(name)) * dtype.itemsize
            if nbytes <= state.device[name].nbytes:
                continue
            state.device[name].free()
            state.device[name] = cm.DeviceBuffer(nbytes)
            state.host[name].free()
            state.host[name] = cm.PinnedBuffer(nbytes)
            self._set_address(state, name, state.device[name].ptr)
            for graph in state.graphs.values():  # they write to the old output address
                if graph is not None:
                    graph.free()
            state.graphs.clear()

    def _enqueue(self, state: ThreadState) -> None:
        if not state.context.execute_async_v3(int(state.stream)):
            raise DeviceError(f"TensorRT execution failed ({'; '.join(self._logger.errors)})",
                              fix="check the input values and GPU memory (`nvidia-smi`)")
        state.reshaped = False

    def _execute(self, state: ThreadState, key: Any) -> None:
        if not self.cuda_graph:
            self._enqueue(state)
            return
        # A graph replays only while the shapes and profile are those of the last plain
        # enqueue: after set_input_shape or a profile switch TensorRT does deferred work in
        # the next enqueueV3, which no graph holds (trtexec and Polygraphy also enqueue once
        # before capturing). So a change of shape always runs one plain enqueue, even when a
        # graph for the new shape was captured earlier.
        if key in state.graphs:
            state.graphs.move_to_end(key)
            graph = state.graphs[key]
            if graph is None or state.reshaped:
                self._enqueue(state)
            else:
                graph.launch(state.stream)
            return
        # New key: the plain enqueue's results are this call's outputs (capturing records
        # work, it does not run it).
        self._enqueue(state)
        state.graphs[key] = cm.CudaGraph.capture(
            state.stream, lambda: state.context.execute_async_v3(int(state.stream)))
        while len(state.graphs) > MAX_GRAPHS_PER_THREAD:
            _, old = state.graphs.popitem(last=False)
            if old is not None:
                old.free()
