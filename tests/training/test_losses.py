"""Losses skip 255 pixels; soft Dice stays in [0, 1] and reaches its ends."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from segdeploy.errors import UsageError
from segdeploy.training.losses import LOSSES, DiceLoss, build_loss


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 9, 11, generator=g)
    target = torch.randint(0, 3, (2, 9, 11), generator=g)
    target[:, :3] = 255
    return logits, target


@pytest.mark.parametrize("name", LOSSES)
def test_ignored_pixels_change_nothing(name):
    logits, target = _batch()
    loss_fn = build_loss(name)
    changed = logits.clone()
    changed[:, :, :3] = torch.randn_like(changed[:, :, :3]) * 10  # only the ignored rows
    assert loss_fn(changed, target).item() == pytest.approx(loss_fn(logits, target).item())
    x = logits.clone().requires_grad_(True)
    loss_fn(x, target).backward()
    assert torch.count_nonzero(x.grad[:, :, :3]) == 0
    assert torch.count_nonzero(x.grad[:, :, 3:]) > 0


def test_cross_entropy_equals_mean_over_valid_pixels():
    logits, target = _batch(1)
    valid = target != 255
    manual = functional.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    assert build_loss("ce")(logits, target).item() == pytest.approx(manual.item(), rel=1e-6)


def test_dice_range_and_extremes():
    _, target = _batch(2)
    safe = target.clamp(max=2)
    perfect = functional.one_hot(safe, 3).permute(0, 3, 1, 2).float() * 50
    wrong = functional.one_hot((safe + 1) % 3, 3).permute(0, 3, 1, 2).float() * 50
    dice = DiceLoss(smooth=1e-6)
    assert dice(perfect, target).item() == pytest.approx(0.0, abs=1e-4)
    assert dice(wrong, target).item() == pytest.approx(1.0, abs=1e-4)
    for seed in range(5):
        logits, target = _batch(seed)
        value = DiceLoss()(logits * 5, target).item()
        assert 0.0 <= value <= 1.0


def test_combined_is_the_sum():
    logits, target = _batch(3)
    both = build_loss("ce+dice")(logits, target).item()
    assert both == pytest.approx(build_loss("ce")(logits, target).item()
                                 + build_loss("dice")(logits, target).item(), rel=1e-6)


def test_unknown_loss():
    with pytest.raises(UsageError, match="unknown loss 'focal'"):
        build_loss("focal")
