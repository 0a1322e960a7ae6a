"""How an engine gets its precision on each TensorRT version, decided as pure functions.

TensorRT 11 removed weak typing (`BuilderFlag.FP16`, `EXPLICIT_BATCH` are gone): an FP16
engine there is built strongly typed from a mixed-precision ONNX. TensorRT 8.x builds FP16
from the FP32 ONNX plus `BuilderFlag.FP16`. We branch on the parsed `trt.__version__` and
never on `hasattr` (a `hasattr` probe silently produced FP32 engines in another project).
After a build, `summarize_engine_layers` reads the engine inspector's JSON to prove that
FP16 layers really exist. No tensorrt import here: everything is testable without a GPU.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from segdeploy.errors import ArtifactError, BuildError, UsageError
from segdeploy.precision import Precision

PRECISIONS = (Precision.FP16, Precision.FP32, Precision.INT8)
HARDWARE_COMPATIBILITY = {"ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}
OPTIMIZATION_LEVELS = range(0, 6)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, order=True)
class TrtVersion:
    """`trt.__version__` reduced to what decisions need: (major, minor); `text` keeps the rest."""

    major: int
    minor: int
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> TrtVersion:
        match = re.match(r"^\s*(\d+)\.(\d+)", str(text))
        if not match:
            raise BuildError(f"cannot read the TensorRT version {text!r}",
                             expected="a version such as '10.3.0' or '8.6.1.6'",
                             fix="reinstall TensorRT (pip install 'segdeploy[tensorrt]')")
        return cls(int(match.group(1)), int(match.group(2)), str(text).strip())

    def at_least(self, major: int, minor: int = 0) -> bool:
        return (self.major, self.minor) >= (major, minor)

    def __str__(self) -> str:
        return self.text or f"{self.major}.{self.minor}"


def check_supported(version: TrtVersion) -> None:
    """segdeploy supports TensorRT 8.5 to 11.x (and later majors on the strongly typed path)."""
    if not version.at_least(8, 5) or version.major == 9:
        raise BuildError(
            f"TensorRT {version} is not supported",
            expected="TensorRT 8.5, 8.6, 10.x or 11.x (9.x was a limited release)",
            fix="install a supported TensorRT (pip install 'segdeploy[tensorrt]'; on a Jetson "
                "JetPack 5.1 has 8.5, 6.0 has 8.6, 6.1+ has 10.x)")


def trt_only(*, min_version: tuple[int, int] = (0, 0),
             below: tuple[int, int] | None = None) -> Callable[[F], F]:
    """Mark a function whose TensorRT names exist only in [min_version, below).

    The function's first argument must be the `tensorrt` module. The API-contract test reads
    this decorator to know which names each TensorRT version must have; at run time the
    wrapper refuses a call on any other version instead of failing with an AttributeError.
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def gated(trt: Any, *args: Any, **kwargs: Any) -> Any:
            version = TrtVersion.parse(trt.__version__)
            key = (version.major, version.minor)
            if key < min_version or (below is not None and key >= below):
                span = f">= {min_version[0]}.{min_version[1]}"
                if below is not None:
                    span += f" and < {below[0]}.{below[1]}"
                raise BuildError(f"internal error: {fn.__name__} was called on TensorRT "
                                 f"{version} but uses names that exist only in TensorRT {span}",
                                 fix="report this as a segdeploy bug")
            return fn(trt, *args, **kwargs)

        gated.trt_range = (min_version, below)  # type: ignore[attr-defined]
        return gated  # type: ignore[return-value]

    return wrap


@dataclass(frozen=True)
class PrecisionChoice:
    """Which ONNX to parse and which TensorRT flags to set, for one version and precision."""

    #: "given": the ONNX the user passed; "fp32-sibling": MODEL.onnx beside MODEL.fp16.onnx;
    #: "convert-to-fp16": made on the fly from the given FP32 ONNX by convert_to_mixed_fp16
    onnx_source: str
    #: NetworkDefinitionCreationFlag member names to set
    network_flags: tuple[str, ...]
    #: BuilderFlag member names to set (only ever "FP16", and only on TensorRT 8.x)
    builder_flags: tuple[str, ...]
    #: precision comes from the ONNX tensor types (always true on TensorRT >= 10)
    strongly_typed: bool
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"onnx_source": self.onnx_source, "network_flags": list(self.network_flags),
                "builder_flags": list(self.builder_flags),
                "strongly_typed": self.strongly_typed, "note": self.note}


def decide_precision(trt_major: int, requested: str, onnx_precision: str, *,
                     fp32_sibling: bool = False) -> PrecisionChoice:
    """The precision choice for (TensorRT major, requested precision, precision of the given ONNX).

    `fp32_sibling` says whether an FP32 ONNX of the same model lies beside a given FP16 one.
    An INT8 (QDQ) ONNX is explicit quantization: strongly typed on TensorRT >= 10 (11 has no
    INT8 flag or calibrator), BuilderFlag.INT8 over the QDQ network on 8.x.
    """
    if "int8" in (requested, onnx_precision) and requested in PRECISIONS:
        return _int8_plan(trt_major, requested, onnx_precision)
    if requested not in PRECISIONS:
        raise UsageError(f"unknown precision {requested!r}", expected="fp16 or fp32",
                         fix="pass --precision fp16 or --precision fp32")
    if onnx_precision not in PRECISIONS:
        raise ArtifactError(f"the ONNX metadata names precision {onnx_precision!r}",
                            expected="fp16 or fp32",
                            fix="re-export the model with `segdeploy export`")
    if requested == Precision.FP32 and onnx_precision == Precision.FP16 and not fp32_sibling:
        raise UsageError(
            "an fp32 engine cannot be built from a float16 ONNX",
            expected="the FP32 ONNX (MODEL.onnx) for --precision fp32",
            fix="pass MODEL.onnx instead of MODEL.fp16.onnx, or build with --precision fp16")
    sibling_needed = requested == Precision.FP32 and onnx_precision == Precision.FP16

    if trt_major >= 10:
        # Strongly typed: the ONNX tensor types are the precision. 11.x has no weak typing at
        # all (the STRONGLY_TYPED flag is deprecated there and ignored), so no flag is needed.
        flags = ("STRONGLY_TYPED",) if trt_major == 10 else ()
        if sibling_needed:
            return PrecisionChoice("fp32-sibling", flags, (), True,
                                 "fp32 engine built from the FP32 ONNX beside the given one")
        if requested == Precision.FP16 and onnx_precision == Precision.FP32:
            return PrecisionChoice("convert-to-fp16", flags, (), True,
                                 "mixed-precision ONNX made from the given FP32 ONNX")
        return PrecisionChoice("given", flags, (), True)

    # TensorRT 8.x: weakly typed; FP16 is a builder flag over the FP32 network.
    fp16 = ("FP16",) if requested == Precision.FP16 else ()
    both_fp16 = requested == Precision.FP16 and onnx_precision == Precision.FP16
    if sibling_needed or (both_fp16 and fp32_sibling):
        return PrecisionChoice("fp32-sibling", ("EXPLICIT_BATCH",), fp16, False,
                             "TensorRT 8.x builds from the FP32 ONNX beside the given one")
    note = ""
    if onnx_precision == Precision.FP16:
        note = "no FP32 ONNX beside the given float16 one: BuilderFlag.FP16 over the mixed graph"
    return PrecisionChoice("given", ("EXPLICIT_BATCH",), fp16, False, note)


def _int8_plan(trt_major: int, requested: str, onnx_precision: str) -> PrecisionChoice:
    if onnx_precision != Precision.INT8:
        raise UsageError(f"an int8 engine cannot be built from a {onnx_precision} ONNX",
                         expected="an INT8 QDQ ONNX (MODEL.int8.onnx)",
                         fix="run `segdeploy quantize MODEL.onnx --data DATA --symmetric` and "
                             "build MODEL.int8.onnx")
    if requested == Precision.FP32:
        raise UsageError("an fp32 engine cannot be built from an INT8 ONNX",
                         fix="pass MODEL.onnx for --precision fp32")
    if trt_major >= 10:
        flags = ("STRONGLY_TYPED",) if trt_major == 10 else ()
        return PrecisionChoice("given", flags, (), True,
                             "explicit INT8 from the QDQ ONNX (strongly typed)")
    return PrecisionChoice("given", ("EXPLICIT_BATCH",), ("INT8",), False,
                         "explicit INT8: BuilderFlag.INT8 over the QDQ network")


def check_opset(version: TrtVersion, opset: int) -> None:
    """TensorRT 8.5/8.6 parse ONNX opset <= 17; say so before the parser fails obscurely."""
    if version.major == 8 and opset > 17:
        raise BuildError(f"the ONNX uses opset {opset}, which TensorRT {version} cannot parse",
                         expected="opset <= 17 for TensorRT 8.x",
                         fix="re-export with `segdeploy export CHECKPOINT --opset 17`")


def check_output_dtypes(version: TrtVersion, outputs: dict[str, str]) -> None:
    """TensorRT 8.x rejects uint8 network outputs (an in-graph uint8 `mask`): say so before
    the build fails obscurely. `outputs` maps names to numpy dtype names."""
    uint8 = [name for name, dtype in outputs.items() if dtype == "uint8"]
    if version.major == 8 and uint8:
        raise BuildError(f"output {uint8[0]!r} is uint8, which TensorRT {version} cannot output",
                         expected="int32 class ids for TensorRT 8.x",
                         fix="re-export with `segdeploy export CHECKPOINT --opset 17 "
                             "--with-argmax --argmax-dtype int32`")


def check_build_options(version: TrtVersion, *, version_compatible: bool = False,
                        hardware_compatibility: str | None = None,
                        optimization_level: int | None = None) -> None:
    """Refuse options that this TensorRT version does not have, before building."""
    problems = []
    if version_compatible and not version.at_least(8, 6):
        problems.append("--version-compatible needs TensorRT >= 8.6")
    if hardware_compatibility is not None:
        if hardware_compatibility not in HARDWARE_COMPATIBILITY:
            raise UsageError(f"unknown hardware compatibility {hardware_compatibility!r}",
                             expected="ampere+ or same-cc")
        if not version.at_least(8, 6):
            problems.append("--hardware-compatibility needs TensorRT >= 8.6")
        elif hardware_compatibility == "same-cc" and not version.at_least(10, 9):
            problems.append("--hardware-compatibility same-cc needs TensorRT >= 10.9")
    if optimization_level is not None:
        check_optimization_level(optimization_level)
        if not version.at_least(8, 6):
            problems.append("--optimization-level needs TensorRT >= 8.6")
    if problems:
        raise UsageError("; ".join(problems) + f" (found TensorRT {version})",
                         fix="drop the option or upgrade TensorRT")


def check_optimization_level(level: int) -> int:
    if level not in OPTIMIZATION_LEVELS:
        raise UsageError(f"optimization level {level} is out of range",
                         expected="an integer from 0 (fastest build) to 5 (slowest, default 3)")
    return level


#: the oldest GPU each hardware-compatibility level can be built on. TensorRT's own docstrings
#: (HardwareCompatibilityLevel in the 10.16 / 11.x bindings): AMPERE_PLUS "is only supported
#: for engines built on NVIDIA Ampere and later GPUs", SAME_COMPUTE_CAPABILITY "on NVIDIA
#: Turing and later GPUs".
_HARDWARE_MIN_CC = {"ampere+": ((8, 0), "an Ampere"), "same-cc": ((7, 5), "a Turing")}


def check_hardware_compatibility(level: str | None, compute_capability: str) -> None:
    """ampere+ needs an Ampere or newer GPU (CC >= 8.0); same-cc a Turing or newer (>= 7.5)."""
    if level is None or not compute_capability or level not in _HARDWARE_MIN_CC:
        return
    (need, family) = _HARDWARE_MIN_CC[level]
    found = tuple(int(p) for p in compute_capability.split(".")[:2])
    if found < need:
        raise UsageError(
            f"--hardware-compatibility {level} needs {family} or newer GPU, "
            f"this GPU has compute capability {compute_capability}",
            expected=f"compute capability >= {need[0]}.{need[1]}",
            fix="drop --hardware-compatibility")


_SIZE_UNITS = {"": 2**20, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20,
               "mb": 2**20, "mib": 2**20, "g": 2**30, "gb": 2**30, "gib": 2**30}


def parse_workspace(text: str) -> int:
    """'512MiB', '4GiB', '2g', '1024' (MiB when no unit) -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _SIZE_UNITS or float(match.group(1)) <= 0:
        raise UsageError(f"cannot read workspace size {text!r}",
                         expected="a positive size such as 512MiB, 4GiB or 1024 (MiB)",
                         fix="pass e.g. --workspace 2GiB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


# ---------------------------------------------------------------- engine inspector JSON

#: TensorRT >= 10 writes formats as "Half(262144,1:8,512,1)", 8.x as "Channel major FP16 format"
_TYPE_PREFIXES = (("BFloat16", "bf16"), ("Half", "fp16"), ("Float", "fp32"), ("Int8", "int8"),
                  ("UInt8", "uint8"), ("Int32", "int32"), ("Int64", "int64"), ("Bool", "bool"),
                  ("FP8", "fp8"))
_TYPE_WORDS = {"FP16": "fp16", "HALF": "fp16", "FP32": "fp32", "FLOAT": "fp32", "INT8": "int8",
               "INT32": "int32", "INT64": "int64", "BF16": "bf16", "BOOL": "bool",
               "UINT8": "uint8", "FP8": "fp8",
               "BFLOAT16": "bf16"}  # "Row major linear BFloat16 format" (TensorRT 8.6+)


def datatype_of(text: Any) -> str | None:
    """The precision named by an inspector type or format string, None if it names none."""
    if not isinstance(text, str):
        return None
    stripped = text.strip()
    for prefix, name in _TYPE_PREFIXES:
        if re.match(rf"{prefix}\b", stripped):
            return name
    for word in re.findall(r"[A-Za-z0-9]+", stripped):
        if word.upper() in _TYPE_WORDS:
            return _TYPE_WORDS[word.upper()]
    return None


def layer_precision(layer: dict[str, Any]) -> str:
    """A layer's compute precision: its weights' type, else its first typed output or input."""
    for key in ("Weights", "Bias", "Kernel"):
        weights = layer.get(key)
        if isinstance(weights, dict) and datatype_of(weights.get("Type")):
            return datatype_of(weights.get("Type"))  # type: ignore[return-value]
    for key in ("Outputs", "Inputs"):
        for tensor in layer.get(key) or []:
            if isinstance(tensor, dict):
                found = datatype_of(tensor.get("Format/Datatype"))
                if found:
                    return found
    return "unknown"


def _is_reformat(layer: dict[str, Any]) -> bool:
    """Layers that only move or convert data, so their FP16 tensors prove no FP16 compute.

    Casts matter on TensorRT >= 10: a mixed ONNX made with keep_io_types starts with a
    float32 -> float16 Cast, whose Half output would otherwise count as an "FP16 layer" even
    in an engine whose every convolution runs in float32.
    """
    kinds = {str(layer.get(k, "")).upper() for k in ("LayerType", "ParameterType", "Origin")}
    return (any("REFORMAT" in kind for kind in kinds) or bool(kinds & {"CAST", "CONSTANT"})
            or str(layer.get("Name", "")).startswith("Reformatting CopyNode"))


def _is_foreign(layer: dict[str, Any]) -> bool:
    """A Myelin-fused subgraph: its inner precisions are hidden from the inspector."""
    text = " ".join(str(layer.get(k, "")) for k in ("LayerType", "Name")).lower()
    return "foreignnode" in text or "myelin" in text


@dataclass
class LayerSummary:
    """Per-precision layer counts of an engine (reformat/cast/constant layers counted apart)."""

    detailed: bool
    total: int = 0
    reformats: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    fp16_examples: list[str] = field(default_factory=list)
    #: Myelin-fused ("ForeignNode") layers: the inspector shows only their float32 I/O
    foreign: int = 0
    #: FP16 compute layers of the parsed (strongly typed) network, set by the builder
    network_fp16_layers: int = 0

    @property
    def fp16(self) -> int:
        return self.counts.get("fp16", 0)

    def to_dict(self) -> dict[str, Any]:
        return {"detailed": self.detailed, "layers": self.total, "reformats": self.reformats,
                "by_precision": dict(sorted(self.counts.items())),
                "fp16_examples": self.fp16_examples, "foreign_nodes": self.foreign,
                "network_fp16_layers": self.network_fp16_layers}


def summarize_engine_layers(info: str | dict[str, Any]) -> LayerSummary:
    """Parse `IEngineInspector.get_engine_information(LayerInformationFormat.JSON)`."""
    try:
        data = json.loads(info) if isinstance(info, str) else info
    except json.JSONDecodeError as exc:
        raise BuildError(f"the engine inspector returned unreadable JSON ({exc})") from exc
    layers = data.get("Layers") if isinstance(data, dict) else None
    if not isinstance(layers, list):
        raise BuildError("the engine inspector JSON has no 'Layers' list",
                         expected='{"Layers": [...], "Bindings": [...]}')
    detailed = all(isinstance(layer, dict) for layer in layers)
    summary = LayerSummary(detailed=detailed and bool(layers), total=len(layers))
    for layer in layers:
        if not isinstance(layer, dict):
            continue  # LAYER_NAMES_ONLY verbosity: names without types
        if _is_reformat(layer):
            summary.reformats += 1
            continue
        if _is_foreign(layer):
            summary.foreign += 1
        precision = layer_precision(layer)
        summary.counts[precision] = summary.counts.get(precision, 0) + 1
        if precision == Precision.FP16 and len(summary.fp16_examples) < 5:
            summary.fp16_examples.append(str(layer.get("Name", "?")))
    return summary


def require_fp16_layers(summary: LayerSummary, requested: str) -> None:
    """Fail loudly when FP16 was asked and the engine holds no FP16 compute layer."""
    if requested != Precision.FP16:
        return
    if not summary.detailed:
        raise BuildError("the engine inspector gave no per-layer precision, so FP16 cannot be "
                         "confirmed", expected="ProfilingVerbosity.DETAILED at build time",
                         fix="report this as a segdeploy bug")
    if summary.fp16 == 0 and summary.foreign and summary.network_fp16_layers:
        # TensorRT >= 10 may fuse a whole strongly typed network into Myelin "ForeignNode"
        # layers that show only their float32 I/O; a strongly typed network's tensor types
        # are its precision, so FP16 layers in the parsed network are the proof instead.
        return
    if summary.fp16 == 0:
        counts = ", ".join(f"{k}: {v}" for k, v in sorted(summary.counts.items())) or "none"
        raise BuildError(
            f"an fp16 engine was asked but it holds no FP16 layer (layers by precision: {counts})",
            expected="FP16 convolution layers",
            fix="on TensorRT >= 10 build from the float16 ONNX (MODEL.fp16.onnx from "
                "`segdeploy export`); check that the GPU supports FP16")
