"""Segmentation losses that skip ignore-index (255) pixels: cross-entropy, soft Dice, both."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from segdeploy.errors import UsageError
from segdeploy.imaging import IGNORE_INDEX

LOSSES = ("ce", "dice", "ce+dice")


class DiceLoss(nn.Module):
    """1 - mean soft Dice over classes, on softmax probabilities; in [0, 1].

    Why soft Dice: it weights classes equally whatever their pixel count, which helps thin
    structures (grey matter) next to a large background. Ignored pixels drop out of both the
    intersection and the sums. Classes absent from the batch's targets and predictions would
    give 0/0; `smooth` makes their Dice 1 (nothing to find, nothing found).
    """

    def __init__(self, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0):
        super().__init__()
        self.ignore_index = ignore_index
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]
        probs = logits.float().softmax(dim=1)
        valid = target != self.ignore_index
        safe = torch.where(valid, target, torch.zeros_like(target)).long()
        onehot = functional.one_hot(safe, k).permute(0, 3, 1, 2).to(probs.dtype)
        w = valid.unsqueeze(1).to(probs.dtype)
        probs, onehot = probs * w, onehot * w
        dims = (0, 2, 3)
        inter = (probs * onehot).sum(dims)
        sums = probs.sum(dims) + onehot.sum(dims)
        dice = (2 * inter + self.smooth) / (sums + self.smooth)
        return 1 - dice.mean()


class CombinedLoss(nn.Module):
    """Cross-entropy plus soft Dice, equally weighted."""

    def __init__(self, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.ce = nn.CrossEntropyLoss(ignore_index=ignore_index)
        self.dice = DiceLoss(ignore_index=ignore_index)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.ce(logits, target) + self.dice(logits, target)


class BinaryLoss(nn.Module):
    """A 1-channel (binary) head: `ce` is binary cross-entropy on the logit, `dice` soft Dice
    of the sigmoid against the foreground (class 1), `ce+dice` both; 255 pixels ignored."""

    def __init__(self, name: str, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0):
        super().__init__()
        self.name, self.ignore_index, self.smooth = name, ignore_index, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = logits[:, 0].float()
        valid = (target != self.ignore_index).to(x.dtype)
        fg = (target == 1).to(x.dtype)
        total = x.new_zeros(())
        if "ce" in self.name:
            bce = functional.binary_cross_entropy_with_logits(x, fg, reduction="none")
            total = total + (bce * valid).sum() / valid.sum().clamp(min=1)
        if "dice" in self.name:
            p = torch.sigmoid(x) * valid
            inter, sums = (p * fg).sum(), p.sum() + (fg * valid).sum()
            total = total + 1 - (2 * inter + self.smooth) / (sums + self.smooth)
        return total


def build_loss(name: str, *, ignore_index: int = IGNORE_INDEX,
               binary: bool = False) -> nn.Module:
    """`ce`, `dice` or `ce+dice`; every variant ignores `ignore_index` target pixels. With
    `binary`, the model has one output channel (BinaryLoss)."""
    if binary and name in LOSSES:
        return BinaryLoss(name, ignore_index=ignore_index)
    if name == "ce":
        return nn.CrossEntropyLoss(ignore_index=ignore_index)
    if name == "dice":
        return DiceLoss(ignore_index=ignore_index)
    if name == "ce+dice":
        return CombinedLoss(ignore_index=ignore_index)
    raise UsageError(f"unknown loss {name!r}", expected="one of " + ", ".join(LOSSES))
