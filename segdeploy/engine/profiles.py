"""Optimisation profiles (min/opt/max input shapes) and I/O specs for TensorRT builds.

Everything here is pure so a bad `--profile` is refused on any machine, before tensorrt is
imported: shapes must fit what the model accepts (its card says the channel count, the size
multiple, the smallest side and the training size) and what the ONNX fixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from segdeploy.dims import format_dims, parse_dims
from segdeploy.errors import ArtifactError, UsageError
from segdeploy.geometry import round_up
from segdeploy.manifest import ExportInfo

Shape = tuple[int, ...]
Dim = int | str | None
KINDS = ("min", "opt", "max")

#: batch and longest side of the default `max` shape
DEFAULT_MAX_BATCH = 4
DEFAULT_MAX_SIDE = 1024


@dataclass(frozen=True)
class ShapeProfile:
    """One optimisation profile of the (single) image input."""

    min: Shape
    opt: Shape
    max: Shape

    def shapes(self) -> dict[str, Shape]:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    def to_dict(self) -> dict[str, list[int]]:
        return {kind: list(shape) for kind, shape in self.shapes().items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapeProfile:
        try:
            return cls(*(tuple(int(v) for v in data[kind]) for kind in KINDS))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"malformed profile {data!r}",
                                expected='{"min": [..], "opt": [..], "max": [..]}') from exc

    def describe(self) -> str:
        return ",".join(f"{kind}={format_shape(shape)}" for kind, shape in self.shapes().items())


format_shape = format_dims


def parse_shape(text: str) -> Shape:
    """'1x3x512x512' -> (1, 3, 512, 512); the rank is checked against the model later
    (validate_profiles), where the message can say what the model takes."""
    return parse_dims(text, ranks=range(1, 9), what="shape")


def parse_profile(text: str) -> ShapeProfile:
    """'min=1x3x128x128,opt=1x3x512x512,max=4x3x1024x1024', or one shape for a fixed profile."""
    text = str(text).strip()
    if "=" not in text:
        shape = parse_shape(text)
        return ShapeProfile(shape, shape, shape)
    found: dict[str, Shape] = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        key = key.strip().lower()
        if key not in KINDS or key in found or not value:
            raise UsageError(f"cannot read profile {text!r} (at {item.strip()!r})",
                             expected="min=NxCxHxW,opt=NxCxHxW,max=NxCxHxW, each key once",
                             fix="e.g. --profile min=1x3x128x128,opt=1x3x512x512,max=4x3x1024x1024")
        found[key] = parse_shape(value)
    missing = [k for k in KINDS if k not in found]
    if missing:
        raise UsageError(f"profile {text!r} lacks {', '.join(missing)}",
                         expected="all of min=, opt= and max= (or a single shape for a fixed one)")
    return ShapeProfile(found["min"], found["opt"], found["max"])


@dataclass(frozen=True)
class InputGeometry:
    """What the model accepts at its image input: from the model card and the ONNX dims."""

    name: str
    in_channels: int
    size_multiple: int
    min_size: int
    train_size: tuple[int, int]
    #: the ONNX input dims: an int is fixed, a str/None is dynamic
    onnx_dims: tuple[Dim, ...] = ("batch", None, "height", "width")

    @classmethod
    def from_export(cls, info: ExportInfo, onnx_dims: tuple[Dim, ...]) -> InputGeometry:
        card = info.card
        train = tuple(int(v) for v in (card.typical_size() or [card.min_size] * 2))
        if len(train) != 2:
            train = (train[0], train[0])
        return cls(name=info.input_name, in_channels=int(card.in_channels),
                   size_multiple=max(1, int(card.size_multiple)),
                   min_size=max(1, int(card.min_size)), train_size=(train[0], train[1]),
                   onnx_dims=tuple(onnx_dims))

    def fixed(self, axis: int) -> int | None:
        dim = self.onnx_dims[axis] if axis < len(self.onnx_dims) else None
        return dim if isinstance(dim, int) and dim > 0 else None

    def accepts(self) -> str:
        m = f"multiples of {self.size_multiple}, " if self.size_multiple > 1 else ""
        return (f"NxCxHxW with C = {self.in_channels}, H and W {m}at least {self.min_size}, "
                f"N >= 1, min <= opt <= max")


def default_profile(geom: InputGeometry, *, max_batch: int = DEFAULT_MAX_BATCH,
                    max_side: int = DEFAULT_MAX_SIDE) -> ShapeProfile:
    """min: smallest accepted image, opt: the training size, max: `max_batch` x `max_side`."""
    m = geom.size_multiple
    smallest = round_up(geom.min_size, m)
    shapes: dict[str, list[int]] = {k: [] for k in KINDS}
    batch = geom.fixed(0)
    for kind, value in zip(KINDS, (1, 1, max(1, max_batch)), strict=True):
        shapes[kind].append(batch or value)
        shapes[kind].append(geom.fixed(1) or geom.in_channels)
    for axis, train in ((2, geom.train_size[0]), (3, geom.train_size[1])):
        fixed = geom.fixed(axis)
        opt = round_up(max(train, smallest), m)
        values = (smallest, opt, round_up(max(max_side, opt), m))
        for kind, value in zip(KINDS, values, strict=True):
            shapes[kind].append(fixed or value)
    return ShapeProfile(*(tuple(shapes[k]) for k in KINDS))


def profile_problems(shapes: ShapeProfile, geom: InputGeometry) -> list[str]:
    """Every reason why the model cannot run at this profile (empty when it can)."""
    problems: list[str] = []
    rank = len(geom.onnx_dims)
    for kind, shape in shapes.shapes().items():
        if len(shape) != rank:
            problems.append(f"{kind} {format_shape(shape)} has {len(shape)} dims, the input has "
                            f"{rank}")
    if problems:
        return problems
    names = ("N", "C", "H", "W") if rank == 4 else tuple(f"dim{i}" for i in range(rank))
    for axis in range(rank):
        lo, mid, hi = shapes.min[axis], shapes.opt[axis], shapes.max[axis]
        if not lo <= mid <= hi:
            problems.append(f"{names[axis]} is not min <= opt <= max ({lo}, {mid}, {hi})")
        fixed = geom.fixed(axis)
        if fixed is not None and {lo, mid, hi} != {fixed}:
            problems.append(f"{names[axis]} is fixed to {fixed} in the ONNX")
    if rank != 4:
        return problems
    for kind, shape in shapes.shapes().items():
        if shape[1] != geom.in_channels:
            problems.append(f"{kind} has {shape[1]} channels, the model takes {geom.in_channels}")
        for axis in (2, 3):
            side = shape[axis]
            if side < geom.min_size:
                problems.append(f"{kind} {names[axis]}={side} is below the model's minimum "
                                f"{geom.min_size}")
            if side % geom.size_multiple:
                problems.append(f"{kind} {names[axis]}={side} is not a multiple of "
                                f"{geom.size_multiple}")
    return problems


def validate_profiles(profiles: list[ShapeProfile], geom: InputGeometry) -> list[ShapeProfile]:
    """Raise one UsageError naming every problem of every profile, or return them unchanged."""
    if not profiles:
        raise UsageError("no optimisation profile", expected="at least one profile")
    messages = []
    for index, shapes in enumerate(profiles):
        problems = profile_problems(shapes, geom)
        if problems:
            label = f"profile {index + 1} ({shapes.describe()})" if len(profiles) > 1 else \
                f"profile {shapes.describe()}"
            messages.append(f"{label}: " + "; ".join(problems))
    if messages:
        suggestion = default_profile(geom).describe()
        raise UsageError(" | ".join(messages) + " — outside what the model accepts",
                         expected=geom.accepts(),
                         fix=f"pass e.g. --profile {suggestion}, or omit --profile to use the "
                             "model's defaults")
    return profiles


# ------------------------------------------------------------------------- I/O specs

#: TensorRT DataType member names -> numpy dtype names (ONNX Runtime's are ORT_TYPE_NAMES)
TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "UINT8": "uint8", "INT8": "int8",
              "INT32": "int32", "INT64": "int64", "BOOL": "bool", "BF16": "bfloat16",
              "FP8": "float8", "INT4": "int4", "FP4": "fp4"}


@dataclass(frozen=True)
class IOSpec:
    name: str
    mode: str  # "input" | "output"
    dtype: str  # numpy name
    shape: tuple[Dim, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "dtype": self.dtype,
                "shape": [d if isinstance(d, int) else -1 for d in self.shape]}


def _same_dtype(onnx_dtype: str, engine_dtype: str) -> bool:
    # TensorRT 8.x has no INT64 I/O: its ONNX parser casts int64 tensors to int32.
    return onnx_dtype == engine_dtype or (onnx_dtype, engine_dtype) == ("int64", "int32")


def io_problems(onnx_io: list[IOSpec], engine_io: list[IOSpec]) -> list[str]:
    """Names, directions and dtypes of the engine's tensors against the ONNX graph's."""
    problems = []
    onnx_by_name = {s.name: s for s in onnx_io}
    engine_by_name = {s.name: s for s in engine_io}
    for name in onnx_by_name.keys() - engine_by_name.keys():
        problems.append(f"ONNX {onnx_by_name[name].mode} {name!r} is missing from the engine")
    for name in engine_by_name.keys() - onnx_by_name.keys():
        problems.append(f"engine {engine_by_name[name].mode} {name!r} is not in the ONNX")
    for name in sorted(onnx_by_name.keys() & engine_by_name.keys()):
        a, b = onnx_by_name[name], engine_by_name[name]
        if a.mode != b.mode:
            problems.append(f"{name!r} is an {a.mode} in the ONNX but an {b.mode} in the engine")
        if not _same_dtype(a.dtype, b.dtype):
            problems.append(f"{name!r} is {a.dtype} in the ONNX but {b.dtype} in the engine")
    return sorted(problems)


def engine_profile_problems(requested: list[ShapeProfile],
                            engine: list[ShapeProfile]) -> list[str]:
    """The engine's profiles (get_tensor_profile_shape) must be exactly those asked for."""
    if len(requested) != len(engine):
        return [f"the engine has {len(engine)} profiles, {len(requested)} were asked"]
    return [f"profile {i}: engine has {e.describe()}, asked {r.describe()}"
            for i, (r, e) in enumerate(zip(requested, engine, strict=True)) if r != e]
