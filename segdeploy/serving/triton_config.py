"""config.pbtxt text for Triton models, as pure functions, and its check against Triton's schema.

Triton reads a model's config.pbtxt as the protobuf text format of `inference.ModelConfig`;
a field it does not know makes the model fail to load on the user's server, far from us. So
every text written here is parsed with `tritonclient.grpc.model_config_pb2` (the real schema)
before a repository is published (`check_config`); where tritonclient is not installed the
check is skipped and the caller says so.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from segdeploy.serving.errors import ConfigSchemaError

#: numpy dtype name -> Triton data type
TRITON_DTYPES = {"uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "int32": "TYPE_INT32",
                 "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32",
                 "bool": "TYPE_BOOL"}
#: the Python model's tensor names (what clients send and ask for)
IMAGE, MASK, LOGITS = "IMAGE", "MASK", "LOGITS"
DEFAULT_QUEUE_DELAY_US = 2000
SCHEMA = "tritonclient.grpc.model_config_pb2.ModelConfig"


def quote(text: str) -> str:
    """A protobuf text-format string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def triton_dtype(dtype: str) -> str:
    try:
        return TRITON_DTYPES[str(dtype)]
    except KeyError:
        raise ConfigSchemaError(f"no Triton data type for numpy dtype {dtype!r}",
                                expected=f"one of {', '.join(TRITON_DTYPES)}") from None


@dataclass(frozen=True)
class Tensor:
    """One model input or output: dims exclude the batch dimension; -1 is any size."""

    name: str
    dtype: str  #: numpy dtype name
    dims: tuple[int, ...]
    ragged: bool = False

    def pbtxt(self) -> str:
        dims = ", ".join(str(d) for d in self.dims)
        ragged = "\n    allow_ragged_batch: true" if self.ragged else ""
        return (f"  {{\n    name: {quote(self.name)}\n    data_type: {triton_dtype(self.dtype)}\n"
                f"    dims: [ {dims} ]{ragged}\n  }}")

    def sized(self, height: int, width: int) -> tuple[int, ...]:
        """dims with the (first two) -1 entries replaced by height and width (warm-up)."""
        sizes = iter((height, width))
        return tuple(next(sizes, 1) if d < 0 else d for d in self.dims)


@dataclass(frozen=True)
class Deployment:
    """What every config shares: name, batching and where instances run."""

    name: str
    max_batch: int = 8
    instances: int = 1
    gpu: bool = False
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US


def _tensors(field: str, tensors: Sequence[Tensor]) -> str:
    return f"{field} [\n" + ",\n".join(t.pbtxt() for t in tensors) + "\n]"


def _common(dep: Deployment, head: str, inputs: Sequence[Tensor],
            outputs: Sequence[Tensor]) -> list[str]:
    kind = "KIND_GPU" if dep.gpu else "KIND_CPU"
    return [f"name: {quote(dep.name)}", head, f"max_batch_size: {dep.max_batch}",
            _tensors("input", inputs), _tensors("output", outputs),
            f"dynamic_batching {{\n  max_queue_delay_microseconds: {dep.queue_delay_us}\n}}",
            f"instance_group [\n  {{\n    count: {dep.instances}\n    kind: {kind}\n  }}\n]"]


def parameters_pbtxt(parameters: Mapping[str, str]) -> str:
    return "\n".join(f"parameters {{\n  key: {quote(k)}\n  value {{ string_value: {quote(v)} }}\n}}"
                     for k, v in parameters.items())


def python_config(dep: Deployment, *, channels: int, num_classes: int, mask_dtype: str,
                  logits: bool, parameters: Mapping[str, str]) -> str:
    """The segmentation model: HxWxC uint8 images of any size in (ragged batches), the
    HxW mask out, K x H x W logits when asked for by name."""
    outputs = [Tensor(MASK, mask_dtype, (-1, -1))]
    if logits:
        outputs.append(Tensor(LOGITS, "float32", (num_classes, -1, -1)))
    lines = _common(dep, 'backend: "python"', [Tensor(IMAGE, "uint8", (-1, -1, channels),
                                                      ragged=True)], outputs)
    return "\n".join([*lines, parameters_pbtxt(parameters)]) + "\n"


def _warmup(inputs: Sequence[Tensor], size: tuple[int, int] | None) -> str:
    if size is None:
        return ""
    entries = []
    for t in inputs:
        dims = ", ".join(str(d) for d in t.sized(*size))
        entries.append(f"    inputs {{\n      key: {quote(t.name)}\n      value {{\n"
                       f"        data_type: {triton_dtype(t.dtype)}\n        dims: [ {dims} ]\n"
                       "        zero_data: true\n      }\n    }")
    return (f'model_warmup [\n  {{\n    name: "card_size_{size[0]}x{size[1]}"\n'
            "    batch_size: 1\n" + "\n".join(entries) + "\n  }\n]")


def onnx_config(dep: Deployment, inputs: Sequence[Tensor], outputs: Sequence[Tensor], *,
                warmup: tuple[int, int] | None = None, tensorrt: bool = False,
                fp16: bool = False) -> str:
    """Triton's native ONNX Runtime model of the graph (GPU servers), optionally with the
    TensorRT execution accelerator (FP16 when asked)."""
    lines = _common(dep, 'platform: "onnxruntime_onnx"', inputs, outputs)
    if tensorrt:
        precision = "FP16" if fp16 else "FP32"
        lines.append(
            "optimization {\n  execution_accelerators {\n    gpu_execution_accelerator : [ {\n"
            '      name : "tensorrt"\n'
            f'      parameters {{ key: "precision_mode" value: "{precision}" }}\n'
            '      parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n'
            "    } ]\n  }\n}")
    lines.append(_warmup(inputs, warmup))
    return "\n".join(line for line in lines if line) + "\n"


def plan_config(dep: Deployment, inputs: Sequence[Tensor], outputs: Sequence[Tensor], *,
                warmup: tuple[int, int] | None = None) -> str:
    """Triton's native TensorRT model of a plan (built for the server's GPU and TensorRT)."""
    lines = _common(dep, 'platform: "tensorrt_plan"', inputs, outputs)
    lines.append(_warmup(inputs, warmup))
    return "\n".join(line for line in lines if line) + "\n"


def check_config(text: str, *, where: str = "config.pbtxt") -> bool:
    """Parse `text` against Triton's ModelConfig schema: True when checked, False when
    tritonclient is not installed (the check was skipped); ConfigSchemaError when it fails."""
    try:
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        return False
    try:
        text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ConfigSchemaError(f"{where} does not parse as Triton's {SCHEMA}: {exc}",
                                expected="a config Triton loads",
                                fix="this is a segdeploy bug: please report it with the "
                                    "command you ran") from None
    return True


def card_parameter(card: Mapping[str, object]) -> str:
    return json.dumps(card, sort_keys=True)
