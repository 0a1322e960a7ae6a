"""Load torchvision-format VGG16 / ResNet-18 ImageNet weights from a local file by key mapping.

torchvision does not import with the CPU torch build here, so the backbones are defined in
this package and a file such as ``vgg16-397923af.pth`` or ``resnet18-f37072fd.pth`` is
mapped onto them. Nothing is downloaded. Only width 1.0 matches those weights.

VGG16: ``features.N.*`` keep their names; ``classifier.0`` (fc6, 4096 x 25088) becomes the
7x7 conv ``fc6`` (4096 x 512 x 7 x 7), ``classifier.3`` (fc7) the 1x1 conv ``fc7``;
``classifier.6`` (the 1000-class fc8) is dropped. ResNet-18: names are kept, ``fc.*`` dropped.
With ``in_channels=1`` the first conv's RGB kernels are summed (exact for grey replicated to
RGB); other channel counts cannot use the weights.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from segdeploy.errors import ModelError
from segdeploy.reference_models.registry import require_full_width
from segdeploy.reference_models.safe_load import torch_load_safely

VGG16_FC = {"classifier.0": "fc6", "classifier.3": "fc7"}
VGG16_DROPPED = ("classifier.6.",)
RESNET18_DROPPED = ("fc.",)
EXAMPLE_FILES = {"VGG16": "vgg16-397923af.pth", "ResNet-18": "resnet18-f37072fd.pth"}


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from a file (weights_only); unwraps {"state_dict": ...} and "module."."""
    data: Any = torch_load_safely(path, "state dict")
    for key in ("state_dict", "model"):
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelError(f"{path} does not hold a state dict of tensors",
                         expected="a torchvision weights file (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in data.items()}


def adapt_first_conv(weight: torch.Tensor, in_channels: int, key: str) -> torch.Tensor:
    """RGB kernels for `in_channels` inputs: unchanged for 3, summed for 1 (grey)."""
    if weight.shape[1] == in_channels:
        return weight
    if in_channels == 1 and weight.shape[1] == 3:
        return weight.sum(dim=1, keepdim=True)
    raise ModelError(f"{key} has {weight.shape[1]} input channels; the model has {in_channels}",
                     expected="in_channels 3 (or 1: RGB kernels are summed)",
                     fix="build the model with in_channels=3 or 1, or drop backbone_weights")


def convert_vgg16_state_dict(sd: dict[str, torch.Tensor], *,
                             in_channels: int = 3) -> dict[str, torch.Tensor]:
    """torchvision VGG16 keys -> VGG16Trunk keys; fc6/fc7 reshaped into conv kernels."""
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith(VGG16_DROPPED):
            continue
        layer, _, param = key.rpartition(".")
        if layer in VGG16_FC:
            name = f"{VGG16_FC[layer]}.{param}"
            if param == "weight":
                value = _fc_to_conv(value, key, kernel=7 if layer == "classifier.0" else 1)
            out[name] = value
        elif key == "features.0.weight":
            out[key] = adapt_first_conv(value, in_channels, key)
        else:
            out[key] = value
    return out


def convert_resnet18_state_dict(sd: dict[str, torch.Tensor], *,
                                in_channels: int = 3) -> dict[str, torch.Tensor]:
    """torchvision ResNet-18 keys -> ResNet18Trunk keys (same names, fc dropped)."""
    out = {k: v for k, v in sd.items() if not k.startswith(RESNET18_DROPPED)}
    if "conv1.weight" in out:
        out["conv1.weight"] = adapt_first_conv(out["conv1.weight"], in_channels, "conv1.weight")
    return out


def _fc_to_conv(weight: torch.Tensor, key: str, kernel: int) -> torch.Tensor:
    """A Linear weight (out, c*k*k) as a conv kernel (out, c, k, k); torchvision flattens CHW."""
    out_f, in_f = weight.shape
    if in_f % (kernel * kernel):
        raise ModelError(f"{key} has {in_f} input features, not a multiple of {kernel}x{kernel}",
                         expected=f"a torchvision VGG16 file ({key}: 4096 x 25088)")
    return weight.reshape(out_f, in_f // (kernel * kernel), kernel, kernel)


def assign_backbone(trunk: nn.Module, sd: dict[str, torch.Tensor], *, source: str,
                    arch: str) -> None:
    """Load converted weights strictly, naming the missing/unexpected/mismatched keys."""
    own = trunk.state_dict()
    # older torchvision files predate BN's num_batches_tracked buffer: it only counts steps
    sd = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **sd}
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}"
                    for k in set(own) & set(sd) if sd[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{name}: {_few(keys)}" for name, keys in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes))
                 if keys]
        found = _guess_family(sd)
        hint = f"; it looks like a {found} file" if found and found != arch else ""
        raise ModelError(
            f"{source} does not match the {arch} backbone{hint} ({'; '.join(parts)})",
            expected=f"a torchvision {arch} state dict",
            fix=f"pass torchvision's {arch} ImageNet weights ({EXAMPLE_FILES[arch]})")
    trunk.load_state_dict(sd, strict=True)


def load_vgg16_backbone(trunk: nn.Module, path: str | os.PathLike[str], *,
                        width: float = 1.0) -> None:
    """Fill a VGG16Trunk (features, fc6, fc7) from a torchvision VGG16 file."""
    require_full_width(width, "VGG16")
    in_channels = trunk.features[0].in_channels
    sd = convert_vgg16_state_dict(read_state_dict(path), in_channels=in_channels)
    assign_backbone(trunk, sd, source=str(path), arch="VGG16")


def load_resnet18_backbone(trunk: nn.Module, path: str | os.PathLike[str], *,
                           width: float = 1.0) -> None:
    """Fill a ResNet18Trunk (incl. BN running statistics) from a torchvision ResNet-18 file."""
    require_full_width(width, "ResNet-18")
    in_channels = trunk.conv1.in_channels
    sd = convert_resnet18_state_dict(read_state_dict(path), in_channels=in_channels)
    assign_backbone(trunk, sd, source=str(path), arch="ResNet-18")


def _guess_family(sd: dict[str, torch.Tensor]) -> str | None:
    if "fc6.weight" in sd or "features.0.weight" in sd:
        return "VGG16"
    if "layer1.0.conv1.weight" in sd:
        return "ResNet-18"
    return None


def _few(keys: list[str], n: int = 4) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more
