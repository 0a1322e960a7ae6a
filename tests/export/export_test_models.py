"""Small "user" models and checkpoints for the export tests (torch; test fixtures only)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from segdeploy.reference_models import get_model
from segdeploy.reference_models.checkpoint import card_from_model, save_checkpoint

#: parity sizes per model: odd, non-square, batch > 1 included, >= the model's min size
SIZES = ["1x3x33x47", "2x3x97x131", "1x3x64x80"]
SIZES_VALID = ["1x3x197x233", "2x3x189x205", "1x3x220x188"]


def sizes_for(arch: str) -> list[str]:
    return SIZES_VALID if arch == "unet_valid" else SIZES


def make_checkpoint(path: Path, arch: str, *, width: float = 0.125, num_classes: int = 3,
                    seed: int = 0) -> Path:
    """A randomly initialised registered model saved as a segdeploy checkpoint."""
    torch.manual_seed(seed)
    model = get_model(arch, num_classes=num_classes, width=width).eval()
    save_checkpoint(path, model, card_from_model(model))
    return path


class UserNet(nn.Module):
    """A user's own net: conv, pool, conv, upsample to the skip's size, 1x1 classifier."""

    def __init__(self, in_channels: int = 3, num_classes: int = 2, mode: str = "bilinear"):
        super().__init__()
        self.mode = mode
        self.a = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = functional.relu(self.a(x))
        z = functional.relu(self.b(functional.max_pool2d(y, 2, ceil_mode=True)))
        z = functional.interpolate(z, size=y.shape[-2:], mode=self.mode, align_corners=False)
        return self.head(y + z)


class SvdNet(UserNet):
    """Uses an operator no ONNX exporter translates (singular values)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = super().forward(x)
        return y + torch.linalg.svdvals(y.mean(1)).sum()


def example() -> torch.Tensor:
    return torch.randn(2, 3, 67, 93)


def save_traced(path: Path, model: nn.Module) -> Path:
    torch.jit.save(torch.jit.trace(model.eval(), (example(),)), str(path))
    return path


def save_pt2(path: Path, model: nn.Module, *, dynamic: bool = True) -> Path:
    auto = torch.export.Dim.AUTO
    shapes = ({0: auto, 2: auto, 3: auto},) if dynamic else None
    program = torch.export.export(model.eval(), (example(),), dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path
