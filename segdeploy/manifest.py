"""Artifact metadata shared by checkpoints, ONNX files and TensorRT plan sidecars. No torch.

One `ModelCard` describes the model (arch, classes, preprocessing, geometry); it travels
inside the checkpoint, inside the ONNX `metadata_props`, and inside `MODEL.plan.json`, so
every artifact describes itself (as torchvision's Weights.meta or timm's PretrainedCfg).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from segdeploy import __version__
from segdeploy.errors import ArtifactError, SegdeployError
from segdeploy.geometry import round_down, round_up
from segdeploy.precision import Precision

if TYPE_CHECKING:
    from segdeploy.imaging import IntensityMapping

CARD_SCHEMA_VERSION = 1
ONNX_SCHEMA_VERSION = 1
PLAN_SCHEMA_VERSION = 1

#: ONNX metadata_props key holding the whole ExportInfo as JSON; the flat
#: `segdeploy.*` keys beside it are for people reading the model in Netron.
ONNX_METADATA_KEY = "segdeploy"


@dataclass
class ModelCard:
    """What any consumer must know to feed a model and read its output."""

    arch: str
    num_classes: int
    classes: list[str]
    in_channels: int = 3
    #: builder keyword arguments: get_model(arch, **config) rebuilds the network
    config: dict[str, Any] = field(default_factory=dict)
    #: per-channel, applied to image / 255 (torchvision convention)
    mean: list[float] = field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = field(default_factory=lambda: [0.229, 0.224, 0.225])
    #: total downsampling of the encoder (32 for FCN/ResNet, 16 for U-Net depth 4)
    output_stride: int = 32
    #: H and W must be multiples of this (1: any size is accepted)
    size_multiple: int = 1
    #: smallest H and W the model accepts
    min_size: int = 32
    #: "same": logits are HxW of the input; "valid": smaller, centred (unet_valid)
    output_mode: str = "same"
    #: typical (H, W) the model was trained at; default bench shape and TensorRT opt profile
    train_size: list[int] = field(default_factory=lambda: [256, 256])
    #: how a grey image is fed: "grey" (1 channel), "grey3" (replicated to 3), "rgb"
    channel_mode: str = "rgb"
    #: how raw pixels become the 0..255 the model saw (`imaging.IntensityMapping.to_dict()`):
    #: 8-bit as stored, or a window for 16-bit / float data. {}: not recorded (artifacts of
    #: older versions), read as the per-image stretch those versions applied.
    intensity: dict[str, Any] = field(default_factory=dict)
    #: what the model was trained on: {"name": "brain", "split": ..., "images": N}
    trained_on: dict[str, Any] = field(default_factory=dict)
    #: validation metrics at the saved epoch
    metrics: dict[str, Any] = field(default_factory=dict)
    #: [H, W] of a `--static-size` graph (adaptive pooling to fixed bins), else None
    static_size: list[int] | None = None
    #: a binary head: the graph outputs ONE channel and a pixel is class 1 (classes[1]) where
    #: it is above this value (0.5 on a sigmoid output, 0 on a logit); None: K channels, argmax
    threshold: float | None = None
    #: dense CRF post-processing tuned for this model by `segdeploy crf-tune` (None: never
    #: tuned, or tuning found it does not help): {"params": CRFParams.to_dict() (iterations,
    #: gaussian_sxy/w, bilateral_sxy/srgb/w), "tuned_on": {data, split, images, metrics with
    #: and without the CRF}}; `predict --crf` uses the params (runtime/crf.py)
    crf: dict[str, Any] | None = None
    segdeploy_version: str = __version__
    schema_version: int = CARD_SCHEMA_VERSION

    def __post_init__(self) -> None:
        legacy = (self.config or {}).get("static_size")
        if self.static_size is None and legacy:  # cards written before it was a field
            self.static_size = [int(legacy[0]), int(legacy[1])]
        if self.static_size is not None and (len(self.static_size) != 2
                                             or min(self.static_size) < 1):
            raise ArtifactError(f"model card has static_size {self.static_size!r}",
                                expected="[H, W] with both >= 1, or null")
        if self.threshold is not None and self.num_classes != 2:
            raise ArtifactError(f"model card has a binary threshold {self.threshold} but "
                                f"{self.num_classes} classes",
                                expected="2 classes (background, foreground) for a 1-channel "
                                         "output, or no threshold")
        if len(self.classes) != self.num_classes:
            raise ArtifactError(
                f"model card lists {len(self.classes)} class names for {self.num_classes} classes",
                expected="one name per class")
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise ArtifactError(
                f"model card has mean/std of length {len(self.mean)}/{len(self.std)} "
                f"for {self.in_channels} input channels", expected="one value per channel")
        if self.output_mode not in ("same", "valid"):
            raise ArtifactError(f"unknown output_mode {self.output_mode!r}",
                                expected="'same' or 'valid'")
        if self.intensity:
            try:
                self.intensity_mapping()
            except (SegdeployError, TypeError, ValueError, IndexError) as exc:
                raise ArtifactError(f"model card has an invalid intensity mapping "
                                    f"{self.intensity!r} ({exc})") from exc

    @property
    def output_channels(self) -> int:
        """Channels of the graph's logits: 1 for a binary head, else one per class."""
        return 1 if self.threshold is not None else self.num_classes

    def typical_size(self) -> list[int]:
        """The (H, W) inputs will typically have: the training images' size when they all
        share one (brain: 197x233, whatever the crop), else the training crop size. The
        default bench shape and the TensorRT opt profile use it."""
        sizes = (self.trained_on or {}).get("image_sizes") or []
        if len(sizes) == 1 and len(sizes[0]) == 2:
            return [int(sizes[0][0]), int(sizes[0][1])]
        return list(self.train_size)

    def fit_side(self, side: int) -> int:
        """The smallest side >= `side` the model accepts: at least min_size, rounded up to
        size_multiple (the one place this rule is written)."""
        return round_up(max(int(side), int(self.min_size)), self.size_multiple)

    def fit_size(self, h: int, w: int, *,
                 max_size: tuple[int | None, int | None] = (None, None)) -> tuple[int, int]:
        """(H, W) made valid for the model; a side above `max_size` (an engine's largest
        profile) is brought down to the largest valid size below it."""
        out = []
        for side, hi in zip((h, w), max_size, strict=True):
            side = self.fit_side(side)
            if hi is not None and side > hi:
                side = round_down(hi, self.size_multiple)
            out.append(side)
        return out[0], out[1]

    def accepts_size(self, h: int, w: int) -> bool:
        return (h, w) == self.fit_size(h, w) and min(h, w) >= 1

    def size_rule(self) -> str:
        """The rule in words, for error messages."""
        multiple = max(1, int(self.size_multiple))
        return f"sides >= {self.min_size}" + (f" and multiples of {multiple}"
                                                if multiple > 1 else "")

    def intensity_mapping(self) -> IntensityMapping:
        """The card's intensity mapping as an object (see segdeploy.imaging)."""
        from segdeploy.imaging import IntensityMapping

        return IntensityMapping.from_dict(self.intensity)

    def aligned_size(self, h: int, w: int, *, stride: bool = True) -> tuple[int, int]:
        """The input size an h x w image is padded to for inference: at least min_size,
        rounded up to size_multiple and, with `stride` ("same" models), to a multiple of
        the output stride, so every image pools on the grid the model was trained on."""
        fh, fw = self.fit_size(h, w)
        m = self.alignment(stride=stride)
        return round_up(fh, m), round_up(fw, m)

    def alignment(self, *, stride: bool = True) -> int:
        """What inference sizes are multiples of: size_multiple, and with `stride` for a
        "same" model also the output stride (their least common multiple)."""
        multiple = max(1, int(self.size_multiple))
        if not stride or self.output_mode != "same":
            return multiple
        return math.lcm(multiple, max(1, int(self.output_stride)))

    def fixed_size(self) -> tuple[int, int] | None:
        """`static_size` as an (H, W) tuple, or None for a dynamic graph."""
        size = self.static_size
        return (int(size[0]), int(size[1])) if size else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        return _from_dict(cls, data, "model card")


@dataclass
class ExportInfo:
    """Metadata of one exported ONNX graph: its model card plus how the graph was made."""

    card: ModelCard
    input_name: str = "input"
    output_names: list[str] = field(default_factory=lambda: ["logits"])
    #: "float32" (normalised NCHW) or "uint8" (raw image in `input_layout`, normalised in-graph)
    input_dtype: str = "float32"
    preprocess_in_graph: bool = False
    argmax_in_graph: bool = False
    #: dtype of the in-graph `mask` output: "uint8" | "int32"; "" without one (graphs
    #: exported before this field with a mask have int32)
    mask_dtype: str = ""
    precision: Precision = Precision.FP32  # fp16: mixed, I/O float32; int8: QDQ
    opset: int = 18
    source_sha256: str = ""
    input_layout: str = "NCHW"
    #: names of nodes kept in float32 in an fp16 graph, with the reason
    fp32_nodes: dict[str, str] = field(default_factory=dict)
    segdeploy_version: str = __version__
    schema_version: int = ONNX_SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.precision = _precision(self.precision, "ONNX metadata")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportInfo:
        data = dict(_as_object(data, "ONNX metadata"))
        card = ModelCard.from_dict(data.pop("card", {}))
        return _from_dict(cls, {**data, "card": card}, "ONNX metadata")

    def to_metadata_props(self) -> dict[str, str]:
        """Key/value strings for onnx `metadata_props` (the JSON key is what we read back)."""
        c = self.card
        flat = {
            ONNX_METADATA_KEY: json.dumps(self.to_dict(), sort_keys=True),
            "segdeploy.arch": c.arch,
            "segdeploy.classes": json.dumps(c.classes),
            "segdeploy.mean": json.dumps(c.mean),
            "segdeploy.std": json.dumps(c.std),
            "segdeploy.output_stride": str(c.output_stride),
            "segdeploy.intensity": json.dumps(c.intensity, sort_keys=True),
            "segdeploy.input_layout": self.input_layout,
            "segdeploy.input_dtype": self.input_dtype,
            "segdeploy.precision": self.precision,
            "segdeploy.source_sha256": self.source_sha256,
            "segdeploy.version": self.segdeploy_version,
        }
        return flat

    @classmethod
    def from_metadata_props(cls, props: dict[str, str], *, source: str = "ONNX file",
                            card_hint: str = "") -> ExportInfo:
        raw = props.get(ONNX_METADATA_KEY)
        if raw is None:
            hint = card_hint or "--classes NAME1,NAME2,..."
            raise ArtifactError(
                f"{source} has no segdeploy metadata (classes, mean/std)",
                expected="an ONNX file written by `segdeploy export`, or one given a card",
                fix=f"segdeploy card {source} {hint} --mean M1,M2,M3 --std S1,S2,S3 "
                    "(one class name per output channel; mean/std on image/255)")
        try:
            return cls.from_dict(json.loads(raw))
        except json.JSONDecodeError as exc:
            raise ArtifactError(f"{source} has unreadable segdeploy metadata ({exc})") from exc


@dataclass
class PlanManifest:
    """The `.plan.json` sidecar of a TensorRT engine; the plan itself stays a plain plan."""

    export: ExportInfo
    tensorrt_version: str
    precision: Precision
    #: one dict per optimisation profile: {input_name: {"min": [..], "opt": [..], "max": [..]}}
    profiles: list[dict[str, dict[str, list[int]]]]
    #: [{"name", "mode": "input"|"output", "dtype", "shape"}]
    io: list[dict[str, Any]]
    onnx_sha256: str
    gpu_name: str = ""
    compute_capability: str = ""  # "8.7"
    cuda_version: str = ""
    build_flags: dict[str, Any] = field(default_factory=dict)
    build_seconds: float = 0.0
    parity: dict[str, Any] = field(default_factory=dict)
    plan_sha256: str = ""
    segdeploy_version: str = __version__
    schema_version: int = PLAN_SCHEMA_VERSION

    def __post_init__(self) -> None:
        self.precision = _precision(self.precision, "plan manifest")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanManifest:
        data = dict(_as_object(data, "plan manifest"))
        export = ExportInfo.from_dict(data.pop("export", {}))
        return _from_dict(cls, {**data, "export": export}, "plan manifest")


def _precision(value: Any, what: str) -> Precision:
    try:
        return Precision.parse(value)
    except SegdeployError:
        raise ArtifactError(f"{what} has precision {value!r}",
                            expected=" | ".join(p.value for p in Precision),
                            fix="re-create the artifact with this segdeploy") from None


def _as_object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ArtifactError(f"{what} is a JSON {type(data).__name__}, not a JSON object",
                            expected=f"the {what} segdeploy writes (a JSON object)",
                            fix="re-create the artifact with this segdeploy "
                                "(`segdeploy export` / `segdeploy build`)")
    return data


def _from_dict(cls: type, data: dict[str, Any], what: str) -> Any:
    from segdeploy.fieldcheck import check_fields

    _as_object(data, what)
    default = {f.name: f.default for f in dataclasses.fields(cls)}.get("schema_version", 1)
    supported = default if isinstance(default, int) else 1
    version = data.get("schema_version", supported)
    if not isinstance(version, int) or version > supported:
        raise ArtifactError(
            f"{what} has schema version {version!r}, newer than this segdeploy understands",
            expected=f"schema version <= {supported}", fix="upgrade segdeploy")
    names = {f.name for f in dataclasses.fields(cls)}
    known = {k: v for k, v in data.items() if k in names}
    check_fields(cls, known, what)
    try:
        obj = cls(**known)
    except TypeError as exc:
        raise ArtifactError(f"{what} is incomplete or malformed ({exc})",
                            fix="re-create the artifact with this segdeploy version") from exc
    obj.__dict__["_unknown_fields"] = sorted(set(data) - names)  # newer writers may add fields
    return obj
