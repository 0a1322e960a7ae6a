"""Turn training options into a model, a class list and a complete ModelCard."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from segdeploy.errors import DataError, UsageError
from segdeploy.manifest import ModelCard
from segdeploy.training.config import TrainConfig


def build_model(cfg: TrainConfig, num_classes: int, in_channels: int) -> nn.Module:
    """get_model(arch, ...) with only the options the user set; clear errors for the others."""
    from segdeploy.reference_models import get_model, get_model_builder

    builder = get_model_builder(cfg.arch)  # unknown arch -> ModelError listing the names
    params = inspect.signature(builder).parameters
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_channels": in_channels}
    options = {"width": ("--width", cfg.width),
               "batch_norm": ("--batch-norm/--no-batch-norm", cfg.batch_norm),
               "backbone_weights": ("--backbone-weights", cfg.backbone_weights)}
    for key, (flag, value) in options.items():
        if value is None:
            continue
        if key not in params:
            raise UsageError(f"{flag} is not an option of {cfg.arch}",
                             expected="options of " + cfg.arch + ": "
                             + ", ".join(p for p in params if p not in kwargs),
                             fix=f"drop {flag.split('/')[0]}")
        kwargs[key] = str(value) if key == "backbone_weights" else value
    return get_model(cfg.arch, **kwargs)


def resolve_classes(dataset, num_classes: int | None) -> tuple[int, list[str]]:
    """The dataset's classes, or `--num-classes` for folders whose masks do not say."""
    names = list(getattr(dataset, "classes", None) or [])
    if num_classes is None:
        if not names:
            raise UsageError(f"cannot tell how many classes {dataset.name!r} has",
                             fix="pass --num-classes N (the number of class ids in the masks)")
        return len(names), names
    if num_classes < 1:
        raise UsageError(f"--num-classes is {num_classes}", expected="1 or more")
    if num_classes == 1:  # a binary head: one logit channel for a background/foreground task
        if len(names) > 2:
            raise DataError(f"--num-classes 1 (a binary head) but {dataset.name!r} has "
                            f"{len(names)} classes", expected="a dataset with 2 classes",
                            fix=f"drop --num-classes, or pass {len(names)}")
        return 1, (names + ["background", "foreground"][len(names):])[:2]
    if names and num_classes < len(names):
        source = getattr(dataset, "classes_from", "")
        what = (f"its masks hold class ids up to {len(names) - 1}" if source == "mask ids"
                else f"{source or 'it'} names {len(names)} classes ({', '.join(names[:8])}"
                     + (", ..." if len(names) > 8 else "") + ")")
        raise DataError(f"--num-classes {num_classes} is too few for {dataset.name!r}: {what}",
                        expected=f"--num-classes {len(names)} or more",
                        fix=f"drop --num-classes or pass {len(names)} or more")
    names = names + [f"class_{i}" for i in range(len(names), num_classes)]
    return num_classes, names


def make_card(meta: dict[str, Any], dataset, classes: list[str], cfg: TrainConfig,
              train_images: int, metrics: dict[str, Any],
              augmentation: dict[str, Any] | None = None) -> ModelCard:
    """The complete card: data statistics, channel mode, intensity mapping, crop size,
    augmentation, provenance, metrics."""
    from segdeploy.reference_models.checkpoint import card_from_model

    trained_on = dict(dataset.describe())
    if augmentation is not None:
        trained_on["augmentation"] = dict(augmentation)
    if train_images != trained_on.get("images"):
        trained_on["images_available"] = trained_on.get("images")
        trained_on["images"] = train_images
    if cfg.image_size is not None:
        train_size = list(cfg.image_size)
    else:
        sizes = trained_on.get("image_sizes") or [[256, 256]]
        train_size = list(sizes[0])
    holder = nn.Module()
    holder.meta = meta  # card_from_model reads only .meta
    return card_from_model(holder, classes=classes, mean=dataset.mean, std=dataset.std,
                           channel_mode=dataset.channel_mode, train_size=train_size,
                           trained_on=trained_on, metrics=metrics,
                           intensity=dataset.intensity.to_dict())


def crop_note(size: tuple[int, int] | None, image_sizes: list[list[int]] | None) -> str | None:
    """One sentence when the training crop is larger than every training image: each crop is
    then mostly padding (image 0, mask ignored), which costs time and teaches nothing."""
    if size is None or not image_sizes:
        return None
    crop_h, crop_w = size
    if any(h >= crop_h and w >= crop_w for h, w in image_sizes):
        return None
    big_h, big_w = max(image_sizes, key=lambda hw: (hw[0] * hw[1], hw[0]))
    fits = f"{min(crop_h, big_h)}x{min(crop_w, big_w)}"
    return (f"--image-size {crop_h}x{crop_w} is larger than every training image (the largest "
            f"is {big_h}x{big_w}, HxW), so every crop is padded (image 0, mask ignored); pass "
            f"--image-size {fits}, or 'full' to train on whole images")
