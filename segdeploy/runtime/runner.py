"""The Runner protocol every backend implements (after NVIDIA Polygraphy's backend runners).

A runner is cheap to construct and needs no GPU: the session or engine opens on
`activate()` (or `with runner:`) and is released on `deactivate()` / `close()`, which is
idempotent. `infer(feeds)` checks the feeds against `input_specs()` before the backend sees
them, so a wrong name, dtype, rank, size or a NaN becomes an `InputError` that says what the
model takes, never a crash deep inside ONNX Runtime or TensorRT.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from segdeploy.errors import InputError, UsageError
from segdeploy.runtime.device_arrays import DeviceView, as_host_array, device_view

RunnerT = TypeVar("RunnerT", bound="Runner")

Shape = tuple[int, ...]
#: one optimisation profile of one input: (min, opt, max) shapes
ProfileRange = tuple[Shape, Shape, Shape]


@dataclass(frozen=True)
class TensorSpec:
    """Name, dtype and shape of one model input or output.

    `shape` holds ints for fixed dims and None for dynamic ones. `profiles` lists the
    (min, opt, max) shapes a TensorRT engine accepts; it is empty for backends without limits.
    """

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]
    profiles: tuple[ProfileRange, ...] = field(default=())

    @property
    def rank(self) -> int:
        return len(self.shape)

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        text = f"{self.name}: {np.dtype(self.dtype).name} {dims}"
        if self.profiles:
            ranges = ", ".join(f"{_dims(lo)} to {_dims(hi)}" for lo, _, hi in self.profiles)
            text += f" (engine profiles: {ranges})"
        return text


def _dims(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def profiles_containing(spec: TensorSpec, shape: Sequence[int]) -> list[int]:
    """Indices of the optimisation profiles whose [min, max] box contains `shape`."""
    shape = tuple(int(s) for s in shape)
    return [i for i, (lo, _, hi) in enumerate(spec.profiles)
            if len(lo) == len(shape) == len(hi)
            and all(a <= s <= b for a, s, b in zip(lo, shape, hi, strict=True))]


def check_shape(spec: TensorSpec, shape: Sequence[int]) -> None:
    """Raise InputError unless `shape` has the spec's rank, fixed dims and a profile that fits."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != spec.rank:
        raise InputError(f"input {spec.name!r} has shape {shape} (rank {len(shape)})",
                         expected=f"rank {spec.rank}: {spec.describe()}")
    for axis, (want, got) in enumerate(zip(spec.shape, shape, strict=True)):
        if want is not None and want >= 0 and want != got:
            raise InputError(f"input {spec.name!r} has size {got} on axis {axis} (shape {shape})",
                             expected=spec.describe())
    if min(shape, default=1) < 1:
        raise InputError(f"input {spec.name!r} has an empty shape {shape}",
                         expected="every dimension >= 1")
    if spec.profiles and not profiles_containing(spec, shape):
        raise InputError(
            f"input {spec.name!r} shape {_dims(shape)} is outside the engine's profiles",
            expected=spec.describe(),
            fix="resize the input into that range, predict large images in tiles "
                "(Segmenter.predict_tiled or `segdeploy predict --tile`), or rebuild the "
                "engine with a larger maximum profile shape (`segdeploy build`)")


def check_finite(name: str, array: np.ndarray) -> None:
    """Raise InputError on NaN or infinity in a float array.

    Summing first costs one pass; only a non-finite sum pays for the exact checks (a finite
    array whose sum overflows is accepted).
    """
    if array.dtype.kind != "f" or array.size == 0:
        return
    if np.isfinite(array.sum(dtype=np.float64)):
        return
    if np.isnan(array).any():
        raise InputError(f"input {name!r} contains NaN values",
                         expected="finite numbers",
                         fix="check the image decoding and normalisation (np.isnan(x).any())")
    if np.isinf(array).any():
        raise InputError(f"input {name!r} contains infinite values", expected="finite numbers")


def check_feeds(specs: Mapping[str, TensorSpec], feeds: Mapping[str, Any], *,
                check_values: bool = True) -> None:
    """Validate host (numpy) feeds: names, dtypes, shapes and, for floats, finiteness."""
    if not isinstance(feeds, Mapping):
        raise InputError(f"feeds is a {type(feeds).__name__}",
                         expected="a dict {input name: array}")
    missing = [n for n in specs if n not in feeds]
    unknown = [n for n in feeds if n not in specs]
    if missing or unknown:
        raise InputError(
            f"feeds name {sorted(feeds)}; missing {missing}, unknown {unknown}",
            expected="inputs " + "; ".join(s.describe() for s in specs.values()))
    for name, spec in specs.items():
        value = feeds[name]
        if not hasattr(value, "dtype") or not hasattr(value, "shape"):
            raise InputError(f"input {name!r} is a {type(value).__name__}",
                             expected="a numpy array or a device array (DeviceView)")
        if value.dtype != spec.dtype:
            raise InputError(
                f"input {name!r} has dtype {value.dtype}", expected=spec.describe(),
                fix=f"convert with x.astype(np.{np.dtype(spec.dtype).name})")
        check_shape(spec, value.shape)
        if check_values and isinstance(value, np.ndarray):
            check_finite(name, value)  # device memory is not read back to look for NaN


@dataclass(frozen=True)
class SizeRule:
    """The smallest height and width a model's image input takes (from its ModelCard): a
    smaller input runs but gives wrong values, so `infer` refuses it."""

    input_name: str
    min_size: int
    layout: str = "NCHW"

    @classmethod
    def from_export_info(cls, info: Any) -> SizeRule | None:
        min_size = int(getattr(info.card, "min_size", 0) or 0)
        return cls(info.input_name, min_size, info.input_layout.upper()) if min_size > 1 else None


def check_min_size(rule: SizeRule | None, feeds: Mapping[str, Any]) -> None:
    """InputError naming the minimum when an image input is smaller than the model takes."""
    value = feeds.get(rule.input_name) if rule is not None else None
    if rule is None or value is None or len(value.shape) != 4:
        return
    axes = (1, 2) if rule.layout == "NHWC" else (2, 3)
    h, w = (int(value.shape[a]) for a in axes)
    if min(h, w) < rule.min_size:
        raise InputError(
            f"input {rule.input_name!r} is {h}x{w} (H x W), below this model's minimum size "
            f"{rule.min_size}", expected=f"height and width >= {rule.min_size}",
            fix="pad the input (Segmenter.predict / image_logits pad images for you)")


def check_output_names(available: Sequence[str], requested: Sequence[str] | None) -> list[str]:
    """Return the outputs to fetch (all when None); unknown names are a UsageError."""
    if requested is None:
        return list(available)
    unknown = [n for n in requested if n not in available]
    if unknown:
        raise UsageError(f"unknown output names {unknown}", expected=f"some of {list(available)}")
    return list(requested)


class Runner(abc.ABC):
    """Base of every backend: activation state, context manager and checked `infer`.

    Subclasses implement `_activate`, `_deactivate`, `_input_specs`, `_output_specs` and
    `_infer`; everything else (idempotent close, checks) is shared.
    """

    name: str = "runner"
    #: the graph holds quantized (QDQ) layers, where the backend can tell from the graph
    #: itself (a QDQ copy of an FP32 export may still be labelled fp32)
    quantized: bool = False

    @property
    def host_memory(self) -> bool:
        """Whether inference works in this process's host memory (ONNX Runtime on the CPU,
        OpenVINO): then its resident size measures what a run needs."""
        return True

    def __init__(self) -> None:
        self._active = False
        self._in_specs: dict[str, TensorSpec] | None = None
        self._out_specs: dict[str, TensorSpec] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def is_active(self) -> bool:
        return self._active

    def activate(self: RunnerT) -> RunnerT:
        """Open the session / engine; a second call is a no-op."""
        if not self._active:
            self._activate()
            self._active = True
        return self

    def deactivate(self) -> None:
        """Release every backend resource; safe to call more than once."""
        if self._active:
            self._active = False
            self._in_specs = self._out_specs = None
            self._deactivate()

    close = deactivate

    def __enter__(self: RunnerT) -> RunnerT:
        self.activate()
        return self

    def __exit__(self, *exc: object) -> None:
        self.deactivate()

    def __del__(self) -> None:  # a forgotten close must not leak device memory
        try:
            self.deactivate()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing sensible to report
            pass

    def _require_active(self) -> None:
        if not self._active:
            raise UsageError(f"{self.name} is not active",
                             fix="use `with runner:` or call runner.activate() first")

    # -- metadata --------------------------------------------------------------------------
    def input_specs(self) -> dict[str, TensorSpec]:
        self._require_active()
        if self._in_specs is None:
            self._in_specs = self._input_specs()
        return self._in_specs

    def output_specs(self) -> dict[str, TensorSpec]:
        self._require_active()
        if self._out_specs is None:
            self._out_specs = self._output_specs()
        return self._out_specs

    # -- inference -------------------------------------------------------------------------
    def infer(self, feeds: Mapping[str, Any], *, output_names: Sequence[str] | None = None,
              check: bool = True) -> dict[str, np.ndarray]:
        """Run one inference. `check=False` skips the feed checks (for trusted callers)."""
        return self._infer(*self._checked_call(feeds, output_names, check))

    def _checked_call(self, feeds: Mapping[str, Any], output_names: Sequence[str] | None,
                      check: bool) -> tuple[dict[str, Any], list[str]]:
        """What `infer` hands `_infer`: converted (and, with `check`, checked) feeds and the
        output names; for backends' variants of `infer` (TensorRTRunner.infer_phases)."""
        self._require_active()
        if not isinstance(feeds, Mapping):
            raise InputError(f"feeds is a {type(feeds).__name__}",
                             expected="a dict {input name: array}")
        feeds = {name: self._as_feed(name, value) for name, value in feeds.items()}
        if check:
            check_feeds(self.input_specs(), feeds)
            check_min_size(self.size_rule(), feeds)
        return feeds, check_output_names(list(self.output_specs()), output_names)

    def size_rule(self) -> SizeRule | None:
        """The model's smallest H/W from its metadata (segdeploy artifacts); None: unknown."""
        return None

    def metadata(self) -> dict[str, str]:
        """The artifact's model metadata as ONNX metadata_props (the card lives under the
        "segdeploy" key); {} for a file that carries none. Needs no activation."""
        return {}

    def _as_feed(self, name: str, value: Any) -> np.ndarray | DeviceView:
        """numpy arrays pass as they are; GPU arrays become DeviceViews, other host data numpy."""
        if isinstance(value, np.ndarray):
            return value
        view = device_view(value)
        return view if view is not None else as_host_array(value, name)

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    @abc.abstractmethod
    def _input_specs(self) -> dict[str, TensorSpec]: ...

    @abc.abstractmethod
    def _output_specs(self) -> dict[str, TensorSpec]: ...

    @abc.abstractmethod
    def _infer(self, feeds: Mapping[str, Any], output_names: list[str]) -> dict[str, np.ndarray]:
        ...
