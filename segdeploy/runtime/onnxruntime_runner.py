"""ONNX Runtime backend: CPU, CUDA or TensorRT execution providers behind the Runner protocol.

GPU providers run through I/O binding, so inputs already on the GPU (torch/cupy tensors via
DLPack or `__cuda_array_interface__`) are bound in place without a host round trip.
ONNX Runtime's own exceptions are translated into SegdeployErrors at this boundary.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import (
    ArtifactError,
    DeviceError,
    InputError,
    MissingDependencyError,
    SegdeployError,
    UsageError,
    first_line,
    map_exceptions,
    require,
)
from segdeploy.runtime.device_arrays import DeviceView
from segdeploy.runtime.runner import Runner, SizeRule, TensorSpec

PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider")

#: ONNX Runtime's type strings -> dtype names (the one table; bfloat16 has no numpy dtype, so
#: only the engine build, which reads names, can take it)
ORT_TYPE_NAMES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(uint16)": "uint16",
    "tensor(int16)": "int16", "tensor(int32)": "int32", "tensor(int64)": "int64",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(bfloat16)": "bfloat16",
}

ProviderArg = str | tuple[str, dict[str, Any]]


def numpy_dtype(ort_type: str) -> np.dtype:
    """'tensor(float)' -> float32; unsupported element types are an ArtifactError."""
    name = ORT_TYPE_NAMES.get(ort_type)
    if name is None or name == "bfloat16":
        raise ArtifactError(f"model tensor type {ort_type} is not supported by segdeploy",
                            expected=f"one of {sorted(set(ORT_TYPE_NAMES) - {'tensor(bfloat16)'})}")
    return np.dtype(name)


def resolve_providers(requested: str | Sequence[ProviderArg] | None,
                      available: Sequence[str]) -> list[ProviderArg]:
    """Turn 'cpu' / 'cuda,cpu' / ['tensorrt', ...] into ONNX Runtime provider names.

    None picks CUDA when this onnxruntime has it, else CPU. The CPU provider is always
    appended as the fallback for nodes a GPU provider does not take.
    """
    if requested is None:
        names: list[ProviderArg] = (["CUDAExecutionProvider"]
                                    if "CUDAExecutionProvider" in available else [])
    else:
        if isinstance(requested, str):
            requested = [p.strip() for p in requested.split(",") if p.strip()]
        names = []
        for item in requested:
            name, options = (item if isinstance(item, tuple) else (item, None))
            full = PROVIDER_ALIASES.get(name.lower(), name)
            if full not in available:
                if full in GPU_PROVIDERS:
                    raise MissingDependencyError(
                        "onnxruntime-gpu", extra="gpu",
                        purpose=f"for ONNX Runtime's {full} (this onnxruntime has "
                                f"{', '.join(available)})")
                raise UsageError(f"unknown or unavailable ONNX Runtime provider {name!r}",
                                 expected=f"one of {sorted(PROVIDER_ALIASES)} or "
                                          f"{', '.join(available)}")
            names.append((full, options) if options else full)
    if "CPUExecutionProvider" not in [n if isinstance(n, str) else n[0] for n in names]:
        names.append("CPUExecutionProvider")
    return names


#: idle intra-op threads do not spin: measured in BENCHMARKS.md ("ONNX Runtime thread spinning")
DEFAULT_SPINNING = False
_SPIN_KEYS = ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning")


#: ONNX Runtime's log severity for "fatal only" (0 verbose, 1 info, 2 warning, 3 error)
ORT_LOG_FATAL = 4


def session_options(ort: Any, given: Any, *, threads: int | None, spinning: bool) -> Any:
    """An ort.SessionOptions from the user's object or config dict, threads and spinning.

    Config entries the user gives win over `spinning`."""
    if given is not None and not isinstance(given, Mapping | ort.SessionOptions):
        raise UsageError(f"session_options is a {type(given).__name__}",
                         expected="an onnxruntime.SessionOptions or a dict of config entries")
    options = given if isinstance(given, ort.SessionOptions) else ort.SessionOptions()
    if not isinstance(given, ort.SessionOptions):
        # fatal only: ORT logs a failed load or run as an [E:onnxruntime:...] line at
        # severity 3 (error) before raising; the exception becomes our one error line
        options.log_severity_level = ORT_LOG_FATAL
    entries = dict(given) if isinstance(given, Mapping) else {}
    for key in _SPIN_KEYS:
        if key not in entries and not _has_entry(options, key):
            entries[key] = "1" if spinning else "0"
    for key, value in entries.items():
        options.add_session_config_entry(str(key), str(value))
    if threads is not None:
        options.intra_op_num_threads = threads
    return options


def _has_entry(options: Any, key: str) -> bool:
    try:
        options.get_session_config_entry(key)
    except RuntimeError:  # onnxruntime raises for a key never set
        return False
    return True


def _load_fix(reason: str) -> str:
    if "external data" in reason.lower():
        return ("the model's external data must be files inside its own folder: "
                "keep the .onnx beside its data files, or re-export it with `segdeploy export`")
    return "the file may be truncated or corrupt: re-export it with `segdeploy export CHECKPOINT`"


class OnnxRuntimeRunner(Runner):
    """Runs an .onnx file with ONNX Runtime.

    providers: 'cpu', 'cuda', 'tensorrt' (or ONNX Runtime names, or (name, options) tuples).
    threads: intra-op threads (None: ONNX Runtime's default, one per physical core).
    io_binding: None binds I/O on GPU providers only; True/False forces it.
    session_options: an `onnxruntime.SessionOptions`, or a dict of session config entries
    (`{"session.intra_op.allow_spinning": "0"}`) applied over the defaults.
    spinning: whether idle intra-op threads spin. None: DEFAULT_SPINNING, chosen by measurement
    (BENCHMARKS.md: spinning threads make two sessions used in turn ~2x slower each).
    """

    name = "onnxruntime"

    def __init__(self, path: str | os.PathLike[str], *,
                 providers: str | Sequence[ProviderArg] | None = None,
                 threads: int | None = None, io_binding: bool | None = None,
                 device_id: int = 0, session_options: Any = None,
                 spinning: bool | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"ONNX file {self.path} does not exist",
                                fix="check the path, or export one with `segdeploy export`")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise UsageError(f"threads={threads!r}", expected="a positive integer or None")
        self.requested_providers = providers
        self.threads = threads
        self.io_binding = io_binding
        self.device_id = device_id
        self.session_options = session_options
        self.spinning = DEFAULT_SPINNING if spinning is None else bool(spinning)
        self.session: Any = None
        self._use_binding = False
        self._errors: tuple[type[BaseException], ...] = ()
        self._size_rule: tuple[SizeRule | None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def _activate(self) -> None:
        ort = require("onnxruntime", purpose="to run ONNX models")
        from onnxruntime.capi import onnxruntime_pybind11_state as state

        self._errors = tuple(getattr(state, n) for n in (
            "Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile",
            "NotImplemented", "RuntimeException", "EPFail") if hasattr(state, n))
        providers = resolve_providers(self.requested_providers, ort.get_available_providers())
        providers = [self._with_device(p) for p in providers]
        options = session_options(ort, self.session_options, threads=self.threads,
                                  spinning=self.spinning)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=options,
                                                providers=providers)
        except self._errors as exc:
            from segdeploy.artifact_kind import wrong_kind

            if (other := wrong_kind(self.path, "onnx")) is not None:
                raise other from None  # a checkpoint, a plan...: say what it is
            reason = first_line(exc, join=True)
            raise ArtifactError(f"ONNX Runtime could not load {self.path} ({reason})",
                                expected="a complete, valid ONNX file",
                                fix=_load_fix(reason)) from None
        active = self.session.get_providers()
        wanted_gpu = [p if isinstance(p, str) else p[0] for p in providers]
        wanted_gpu = [p for p in wanted_gpu if p in GPU_PROVIDERS]
        if self.requested_providers is not None and wanted_gpu and not any(
                p in active for p in wanted_gpu):
            self.session = None
            raise DeviceError(f"ONNX Runtime could not start {', '.join(wanted_gpu)} "
                              f"(session runs on {', '.join(active)})",
                              fix="check the GPU, CUDA and cuDNN versions onnxruntime-gpu "
                                  "needs, or use providers='cpu'")
        on_gpu = any(p in GPU_PROVIDERS for p in active)
        self._use_binding = on_gpu if self.io_binding is None else bool(self.io_binding)
        self._on_gpu = on_gpu

    def _with_device(self, provider: Any) -> Any:
        if provider in GPU_PROVIDERS and self.device_id:
            return (provider, {"device_id": self.device_id})
        return provider

    def _deactivate(self) -> None:
        self.session = None
        self._size_rule = None

    @property
    def host_memory(self) -> bool:
        return self.is_active and self.providers[0] == "CPUExecutionProvider"

    @property
    def providers(self) -> list[str]:
        """The providers the session actually runs on (after activation)."""
        self._require_active()
        return list(self.session.get_providers())

    def metadata(self) -> dict[str, str]:
        """The ONNX file's metadata_props (segdeploy.onnx_metadata: no session needed)."""
        from segdeploy.onnx_metadata import read_metadata_props

        return read_metadata_props(self.path)

    def size_rule(self) -> SizeRule | None:
        """From the segdeploy metadata when the file has it (cached per session)."""
        self._require_active()
        if self._size_rule is None:
            from segdeploy.manifest import ExportInfo

            try:
                info = ExportInfo.from_metadata_props(self.metadata())
                self._size_rule = (SizeRule.from_export_info(info),)
            except SegdeployError:
                self._size_rule = (None,)
        return self._size_rule[0]

    # -- specs -----------------------------------------------------------------------------
    def _spec(self, arg: Any) -> TensorSpec:
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)
        return TensorSpec(arg.name, numpy_dtype(arg.type), shape)

    def _input_specs(self) -> dict[str, TensorSpec]:
        return {a.name: self._spec(a) for a in self.session.get_inputs()}

    def _output_specs(self) -> dict[str, TensorSpec]:
        return {a.name: self._spec(a) for a in self.session.get_outputs()}

    # -- inference -------------------------------------------------------------------------
    def _infer(self, feeds: Mapping[str, Any], output_names: list[str]) -> dict[str, np.ndarray]:
        has_device = any(isinstance(v, DeviceView) for v in feeds.values())
        try:
            if not (self._use_binding or has_device):
                return dict(zip(output_names, self.session.run(output_names, feeds), strict=True))
            return self._infer_bound(feeds, output_names)
        except self._errors:  # translated only when it failed: nothing added to a good run
            with map_exceptions(self._run_errors({k: tuple(v.shape) for k, v in feeds.items()})):
                raise

    def _run_errors(self, shapes: dict[str, tuple[int, ...]]) -> dict[Any, Any]:
        """ONNX Runtime's exceptions at run time, as ours: a failing execution provider or an
        operator it lacks is the engine's fault, not the caller's input (map_exceptions)."""
        from onnxruntime.capi import onnxruntime_pybind11_state as state

        def provider(exc: BaseException) -> SegdeployError:
            return DeviceError(f"ONNX Runtime's execution provider failed on inputs {shapes} "
                               f"({first_line(exc, join=True)})",
                               fix="run on the CPU (providers='cpu' / --providers cpu) or "
                                   "check the GPU driver and the provider's libraries")

        def unsupported(exc: BaseException) -> SegdeployError:
            return ArtifactError(f"ONNX Runtime cannot run this graph ({first_line(exc)})",
                                 expected="operators the installed ONNX Runtime implements",
                                 fix="upgrade onnxruntime or re-export with another --opset")

        def bad_input(exc: BaseException) -> SegdeployError:
            return InputError(
                f"ONNX Runtime failed on inputs {shapes} ({first_line(exc, join=True)})",
                expected="an input size this model supports (see its min_size and "
                         "size_multiple: Segmenter pads to them)",
                fix="use Segmenter.predict, which pads the image to a supported size")

        mapping: dict[Any, Any] = {}
        for name, translate in (("EPFail", provider), ("NotImplemented", unsupported)):
            if hasattr(state, name):
                mapping[getattr(state, name)] = translate
        mapping[self._errors] = bad_input
        return mapping

    def _infer_bound(self, feeds: Mapping[str, Any],
                     output_names: list[str]) -> dict[str, np.ndarray]:
        binding = self.session.io_binding()
        for name, value in feeds.items():
            if isinstance(value, DeviceView):
                if not self._on_gpu:
                    raise InputError(f"input {name!r} is in GPU memory but the session runs on "
                                     "the CPU", fix="pass a host array, or use providers='cuda'")
                binding.bind_input(name, "cuda", value.device_id, value.dtype.type,
                                   list(value.shape), value.ptr)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        for name in output_names:
            binding.bind_output(name, "cpu")
        self.session.run_with_iobinding(binding)
        return dict(zip(output_names, binding.copy_outputs_to_cpu(), strict=True))
