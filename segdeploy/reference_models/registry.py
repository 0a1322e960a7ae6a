"""Model registry in the style of torchvision's models/_api.py: a plain dict of builders.

Builders are keyword-only functions returning an ``nn.Module`` with a ``meta`` dict, so
``get_model(meta["arch"], **meta["config"])`` always rebuilds the same network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from segdeploy.errors import ModelError

BUILTIN_MODELS: dict[str, Callable[..., Any]] = {}

F = TypeVar("F", bound=Callable[..., Any])


def register_model(name: str | None = None) -> Callable[[F], F]:
    """Decorator adding a builder under `name` (default: the function name); duplicates fail."""

    def wrapper(fn: F) -> F:
        key = name or fn.__name__
        if key in BUILTIN_MODELS:
            raise ModelError(f"a model named {key!r} is already registered",
                             expected="a unique model name",
                             fix="choose another name for the new builder")
        BUILTIN_MODELS[key] = fn
        return fn

    return wrapper


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(BUILTIN_MODELS)


def get_model_builder(name: str) -> Callable[..., Any]:
    try:
        return BUILTIN_MODELS[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}",
                         expected=f"one of {', '.join(list_models())}",
                         fix="pick a registered name (segdeploy.reference_models.list_models())"
                         ) from None


def get_model(name: str, **config: Any) -> Any:
    """Build the registered model `name` with keyword options (num_classes, width, ...)."""
    builder = get_model_builder(name)
    try:
        return builder(**config)
    except TypeError as exc:
        if "unexpected keyword argument" in str(exc) or "positional argument" in str(exc):
            raise ModelError(f"bad options for model {name!r}: {exc}",
                             expected="keyword options the builder accepts",
                             fix=f"see help(get_model_builder({name!r}))") from exc
        raise


def scaled(channels: int, width: float, minimum: int = 8) -> int:
    """Channels of a layer at a width multiplier; never below `minimum` so tiny models work."""
    if width <= 0:
        raise ModelError(f"width must be positive, got {width}",
                         expected="a channel multiplier > 0 (1.0 = paper size)")
    return max(minimum, int(round(channels * width)))


def check_common(num_classes: int, in_channels: int) -> None:
    """Validate the options every builder takes."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ModelError(f"num_classes must be a positive integer, got {num_classes!r}",
                         expected="1 (a binary head: one logit, foreground above 0) or the "
                                  "number of classes (2 or more: softmax / argmax)")
    if not isinstance(in_channels, int) or in_channels < 1:
        raise ModelError(f"in_channels must be a positive integer, got {in_channels!r}",
                         expected="1 (grey) or 3 (rgb)")


def require_full_width(width: float, arch: str) -> None:
    """Pretrained torchvision weights exist only for the paper-size network."""
    if width != 1.0:
        raise ModelError(f"torchvision {arch} weights need width=1.0, got width={width}",
                         expected="the paper-size network when backbone_weights is given",
                         fix="build with width=1.0 or drop backbone_weights")


def attach_meta(model: Any, *, arch: str, config: dict[str, Any], output_stride: int,
                min_size: int, size_multiple: int = 1, output_mode: str = "same") -> Any:
    """Set `model.meta`, the self-description that checkpoints and ONNX metadata copy."""
    model.meta = {
        "arch": arch,
        "config": dict(config),
        "num_classes": int(config["num_classes"]),
        "in_channels": int(config["in_channels"]),
        "output_stride": output_stride,
        "size_multiple": size_multiple,
        "min_size": min_size,
        "output_mode": output_mode,
    }
    return model
