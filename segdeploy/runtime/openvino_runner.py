"""OpenVINO backend on the CPU behind the Runner protocol: FP32 and INT8 (QDQ) ONNX alike.

OpenVINO reads the .onnx directly (dynamic H and W stay dynamic) and compiles it for the
CPU. `precision` is its inference precision hint: "fp32", "bf16", or "auto", which keeps the
plugin's own choice (bf16 on CPUs with AMX / AVX-512 BF16, else fp32: what those CPUs run
fastest, see BENCHMARKS.md) for a float graph and fp32 for an INT8 QDQ graph (its quantized
layers run in int8 either way; the ones kept in float were kept for their accuracy); the
precision it really used is read back after compiling and kept in `inference_precision`.

An INT8 graph with a dynamic input runs as a fixed-size copy compiled for each input shape
(the last `STATIC_COPIES` kept, ~0.2 s per new shape for the demo U-Net): with dynamic H, W,
OpenVINO 2026.4's CPU plugin computed the demo U-Net wrongly (56 % argmax agreement with ONNX
Runtime on the same file; 99.8 % at fixed size). The torch.export graph resizes the last
decoder map to the input's H, W; OpenVINO reads that shape from the last full-size
convolution instead, whose output FakeQuantize then stays unfused, and that separate
FakeQuantize loses the convolution's bias (tests/runtime/qdq_unet_graph.py rebuilds the
pattern without torch). At a fixed size the shape is a constant and the fusion happens.

Large-stride ConvTransposes (FCN's x8 / x32 upsamplers) are read as sub-pixel convolutions
(runtime/subpixel.py): OpenVINO's two-thread ConvolutionBackpropData is 12x slower than one
thread on FCN-8s's at 394x466.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from segdeploy.errors import ArtifactError, InputError, UsageError, first_line, require
from segdeploy.runtime.device_arrays import DeviceView
from segdeploy.runtime.qdq_types import QdqTypes, classify, wire_graph
from segdeploy.runtime.runner import Runner, TensorSpec
from segdeploy.runtime.subpixel import rewritten_onnx

PRECISIONS = ("auto", "fp32", "bf16")
_HINTS = {"fp32": "f32", "bf16": "bf16"}
#: OpenVINO's element type names -> segdeploy's precision words
_TYPE_WORDS = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16",
               "f16": "fp16", "float16": "fp16"}
#: fixed-size compiled copies of a dynamic INT8 graph kept at once (one per input shape)
STATIC_COPIES = 4


def require_openvino() -> Any:
    """Import openvino or raise MissingDependencyError naming the extra."""
    return require("openvino", extra="openvino", purpose="to run models with OpenVINO")


def precision_word(value: Any) -> str:
    """'bf16' from OpenVINO's Type('bf16') / 'bfloat16' / <Type: 'bfloat16'>."""
    text = str(getattr(value, "get_type_name", lambda: value)()).lower()
    for key, word in _TYPE_WORDS.items():
        if key in text:
            return word
    return text


class OpenVINORunner(Runner):
    """Runs an .onnx file with OpenVINO on the CPU.

    precision: "auto" (the plugin's default; fp32 for INT8 graphs), "fp32" or "bf16" (inference
    precision hint).
    threads: inference threads (None: OpenVINO's default, all cores).
    """

    name = "openvino"

    def __init__(self, path: str | os.PathLike[str], *, precision: str = "auto",
                 threads: int | None = None, device: str = "CPU") -> None:
        super().__init__()
        self.path = Path(path)
        if not self.path.is_file():
            raise ArtifactError(f"ONNX file {self.path} does not exist",
                                fix="check the path, or export one with `segdeploy export`")
        if precision not in PRECISIONS:
            raise UsageError(f"precision={precision!r}", expected=" | ".join(PRECISIONS))
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise UsageError(f"threads={threads!r}", expected="a positive integer or None")
        self.precision = precision
        self.threads = threads
        self.device = device
        self.inference_precision: str | None = None
        self._compiled: Any = None
        self._request: Any = None
        self._dynamic_int8: Any = None  #: the read model, when INT8 runs at fixed sizes
        self._static: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._core: Any = None
        self._config: dict[str, Any] = {}
        self.subpixel_rewrites = 0

    def _activate(self) -> None:
        graph = wire_graph(self.path)  # read once: the flavour and the ConvTransposes
        refuse_wrong_flavour(self.path, classify(graph))
        ov = require_openvino()
        core = ov.Core()
        rewritten = rewritten_onnx(self.path, graph)
        #: large-stride ConvTransposes run as sub-pixel convolutions (runtime/subpixel.py)
        self.subpixel_rewrites = rewritten[1] if rewritten else 0
        try:
            model = (core.read_model(rewritten[0], b"") if rewritten
                     else core.read_model(str(self.path)))
        except RuntimeError as exc:
            raise ArtifactError(f"OpenVINO could not read {self.path} ({first_line(exc)})",
                                expected="a complete, valid ONNX file",
                                fix="re-export it with `segdeploy export CHECKPOINT`") from exc
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.precision in _HINTS:
            config["INFERENCE_PRECISION_HINT"] = _HINTS[self.precision]
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        self.quantized = any(op.get_type_name() == "FakeQuantize"
                             for op in model.get_ordered_ops())
        if self.quantized and self.precision == "auto":
            # the layers quantize's gate kept in float stay float: under the plugin's bf16
            # default they ran in bf16 and FCN-8s's INT8 file lost 0.2 % agreement at 394x466
            # (99.08 vs 99.43 % with f32, which was as fast: BENCHMARKS.md)
            config["INFERENCE_PRECISION_HINT"] = "f32"
        try:
            self._compiled = core.compile_model(model, self.device, config)
        except RuntimeError as exc:
            raise ArtifactError(
                f"OpenVINO cannot compile {self.path.name} for {self.device} "
                f"({_plugin_reason(exc)})",
                expected="a graph OpenVINO's CPU plugin implements",
                fix="run the file with --backend onnxruntime (backend='onnxruntime')"
                    + (", or the FP32 file with OpenVINO" if self.quantized else "")) from None
        self._request = self._compiled.create_infer_request()
        self.inference_precision = precision_word(
            self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        if self.quantized and any(p.get_partial_shape().is_dynamic for p in model.inputs):
            self._dynamic_int8, self._core, self._config = model, core, config

    def _deactivate(self) -> None:
        self._request = self._compiled = self._dynamic_int8 = self._core = None
        self._static.clear()

    def _request_for(self, feeds: Mapping[str, np.ndarray]) -> Any:
        """The infer request for these feeds: a fixed-size compiled copy of a dynamic INT8
        graph (see the module doc), else the one dynamic request."""
        if self._dynamic_int8 is None:
            return self._request
        key = tuple(sorted((k, tuple(v.shape)) for k, v in feeds.items()))
        request = self._static.get(key)
        if request is None:
            model = self._dynamic_int8.clone()
            model.reshape({k: list(v.shape) for k, v in feeds.items()})
            request = self._core.compile_model(model, self.device,
                                               self._config).create_infer_request()
            self._static[key] = request
            while len(self._static) > STATIC_COPIES:
                self._static.popitem(last=False)
        self._static.move_to_end(key)
        return request

    def metadata(self) -> dict[str, str]:
        """The ONNX file's metadata_props (segdeploy.onnx_metadata: no session needed)."""
        from segdeploy.onnx_metadata import read_metadata_props

        return read_metadata_props(self.path)

    def _spec(self, port: Any) -> TensorSpec:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
        return TensorSpec(port.get_any_name(), np.dtype(port.get_element_type().to_dtype()),
                          shape)

    def _input_specs(self) -> dict[str, TensorSpec]:
        return {p.get_any_name(): self._spec(p) for p in self._compiled.inputs}

    def _output_specs(self) -> dict[str, TensorSpec]:
        return {p.get_any_name(): self._spec(p) for p in self._compiled.outputs}

    def _infer(self, feeds: Mapping[str, Any], output_names: list[str]) -> dict[str, np.ndarray]:
        if any(isinstance(v, DeviceView) for v in feeds.values()):
            raise InputError("a feed is in GPU memory but OpenVINO runs on the CPU",
                             fix="pass host (numpy) arrays")
        arrays = {k: np.ascontiguousarray(v) for k, v in feeds.items()}
        try:
            request = self._request_for(arrays)
            request.infer(arrays)
        except RuntimeError as exc:
            shapes = {k: tuple(v.shape) for k, v in feeds.items()}
            raise InputError(f"OpenVINO failed on inputs {shapes} ({first_line(exc)})",
                             fix="use Segmenter.predict, which pads the image to a "
                                 "supported size") from exc
        return {n: request.get_tensor(n).data.copy() for n in output_names}


def refuse_wrong_flavour(path: Path, types: QdqTypes | None) -> None:
    """An INT8 file of a QDQ flavour OpenVINO mis-runs (S8S8, U8U8: runtime/qdq_types.py)
    is an ArtifactError before OpenVINO reads it."""
    if types is not None and not types.openvino_runs_right:
        raise ArtifactError(
            f"OpenVINO does not run {types.label} INT8 files right ({path.name}: "
            f"{'/'.join(sorted(types.activations))} activations, "
            f"{'/'.join(sorted(types.weights))} weights)",
            expected="a U8S8 QDQ file (uint8 activations, int8 weights) or a float file",
            fix="run it with --backend onnxruntime (backend='onnxruntime'), or quantize "
                "again without --symmetric")


def _plugin_reason(exc: BaseException) -> str:
    """The last line of OpenVINO's nested "Exception from src/..." chain: the reason."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()
             and not ln.strip().startswith(("Exception from", "Check "))]
    return (lines[-1] if lines else first_line(exc))[:300]
